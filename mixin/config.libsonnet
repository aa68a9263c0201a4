// Everything an operator tunes, in one place. Every rule and every dashboard query reads it:
// change the scrape job's name, a threshold or a `for:` here, run `.ci/mixin.sh`, and the
// files in alerts/ and dashboards/ follow.
{
  _config+:: {
    // The scrape job of the exporter. It is in every selector of every rule and every
    // dashboard query, so a second exporter (or another job scraping the same names) never
    // mixes in.
    selector: 'job="tenant-exporter"',

    // Where alerts/runbook.md is served; %s is the lower-case alert name (the section anchor).
    runbookURL: 'https://git.example.com/noc/tenant-exporter/blob/main/alerts/runbook.md#%s',

    // Owning team per source: the `team` label of every alert, used for routing.
    teams: {
      exporter: 'noc',
      broadworks: 'broadworks',
      webex: 'broadworks',
      voss: 'voss',
      commvault: 'backup',
    },

    // How long a tenant or target alert keeps firing after its condition disappears: bridges a
    // pod rename or re-shard (series continue under a new `instance` after the new pod's first
    // collection) and a target going stale (the stale alert takes over), so neither sends a
    // wave of RESOLVED notifications.
    keepFiringFor: '15m',

    // Exporter health.
    exporterDownFor: '5m',
    exporterAbsentFor: '15m',
    // Polls of a collector's own interval (tenant_exporter_collector_interval_seconds)
    // without success before TenantExporterCollectorFailing: the same meaning for a 5-minute
    // and an hourly collector.
    collectorMissedPolls: 3,
    collectorFailingFor: '5m',
    collectorStaleFor: '5m',
    credentialExpiringDays: 14,

    // BroadWorks directory sync.
    broadworksFailedFor: '15m',
    broadworksErrorsFor: '30m',
    broadworksNoSuccessSeconds: 86400,  // no successful sync for a day
    // Webex runs an enterprise's first directory sync up to a week after it is enabled.
    broadworksFirstSyncGrace: '7d',
    broadworksStuckSeconds: 3 * 3600,
    broadworksStatusUnknownFor: '1h',
    // Target-wide failure: at least this share of the target's enabled enterprises and at
    // least this many enterprises failing (one BroadWorks cluster down, error 6003 everywhere).
    broadworksWideFailureRatio: 0.2,
    broadworksWideFailureMin: 3,
    knownSyncStatuses: ['COMPLETE', 'IN_PROGRESS', 'NOT_SYNCED', 'FAILED'],

    // Lists: a target's list emptied, or shrunk by at least this share and this many objects
    // against its highest count of the window.
    listWindow: '1d',
    listShrinkRatio: 0.2,
    listShrinkMin: 5,
    listFor: '15m',

    // Objects that fail inside an otherwise successful collection: missed polls before alerting.
    objectMissedPolls: 3,
    objectFor: '15m',

    // VOSS SparkCustomer tokens.
    vossAccessExpiringSeconds: 2 * 86400,
    vossRefreshExpiringWarningSeconds: 14 * 86400,
    vossRefreshExpiringCriticalSeconds: 3 * 86400,
    vossFor: '15m',
    // A customer whose last token expired longer ago than this has been abandoned: info, not
    // a critical page every day.
    vossAbandonedSeconds: 30 * 86400,
    // Target-wide: at least this many tokens of one VOSS target expired within the last hour
    // (VOSS's token refresh job is broken, not each customer).
    vossWideExpiredMin: 3,
    vossWideExpiredWindowSeconds: 3600,

    // Commvault per-organization drops against the highest count of the window.
    commvaultDropWindow: '6h',
    commvaultDropRatio: 0.2,
    commvaultDropMin: 5,
    commvaultFor: '15m',

    // Dashboards.
    dashboardTags: ['tenant-exporter'],
    dashboardRefresh: '1m',
    dashboards: {
      overview: { file: 'overview.json', uid: 'tenant-exporter-overview', title: 'tenant-exporter / Overview' },
      broadworks: { file: 'broadworks-directory-sync.json', uid: 'tenant-exporter-broadworks', title: 'tenant-exporter / BroadWorks directory sync' },
      tokens: { file: 'token-expiry.json', uid: 'tenant-exporter-tokens', title: 'tenant-exporter / Token expiry' },
      inventory: { file: 'tenant-inventory.json', uid: 'tenant-exporter-inventory', title: 'tenant-exporter / Tenant inventory' },
      health: { file: 'exporter-health.json', uid: 'tenant-exporter-health', title: 'tenant-exporter / Exporter health' },
    },
    // Rows in "top N" time series: a 10,000-tenant estate cannot draw a line per tenant.
    topN: 20,
  },
}
