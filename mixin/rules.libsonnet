// Recording and alerting rules. Every selector carries _config.selector (the scrape job).
//
// Identity: tenant and target alerts aggregate away `instance` (the pod name under the
// ServiceMonitor, which changes on every rollout and re-shard) and keep job, target and the
// tenant's id, so an alert survives a pod rename; keep_firing_for bridges the minutes between
// the old pod's last and the new pod's first collection.
//
// Every condition a dashboard panel also shows is one recording rule, read by both.
//
// Labels on every alert: severity (critical: wake someone; warning: look today; info: good
// to know), team (who owns it: routing), scope (exporter > collector > target > tenant: the
// inhibition chain of deploy/alertmanager/alertmanager.example.yml).
local lib = import 'lib.libsonnet';

{
  local c = $._config,
  local s = { sel: c.selector },
  local q(text) = text % s,
  local keyBW = 'job, target, sp_enterprise_id',
  local keyVoss = 'job, target, hierarchy, customer_name',
  local keyCV = 'job, target, organization_id, organization',

  local alert(name, severity, team, scope, for_, expr, summary, description, keep=true) = {
    alert: name,
    expr: expr,
    'for': for_,
    [if keep then 'keep_firing_for']: c.keepFiringFor,
    labels: { severity: severity, team: team, scope: scope },
    annotations: {
      summary: summary,
      description: lib.oneLine(description),
      runbook_url: c.runbookURL % std.asciiLower(name),
    },
  },

  local record(name, expr) = { record: name, expr: expr },

  // ---------------------------------------------------------------------------------------
  // Recording rules: per tenant and per target, without `instance`. Each source's rule group
  // starts with its recording rules, so its alerts read values of the same evaluation.
  recording:: {
    broadworks: [
          record('enterprise:webex_broadworks_directory_sync_enabled:max', q(|||
            max by (job, target, sp_enterprise_id) (webex_broadworks_directory_sync_enabled{%(sel)s})
          |||)),
          // The last success; a sync that ended COMPLETE with no errors and no
          // lastSuccessfulSyncTime (the vendor's own example) succeeded at its end.
          record('enterprise:webex_broadworks_directory_sync_last_success_timestamp_seconds:max', q(|||
            max by (job, target, sp_enterprise_id) (
              webex_broadworks_directory_sync_last_success_timestamp_seconds{%(sel)s}
              or
                (
                  webex_broadworks_directory_sync_last_end_timestamp_seconds{%(sel)s}
                  and on (job, instance, target, sp_enterprise_id)
                    (webex_broadworks_directory_sync_status{%(sel)s,status="COMPLETE"} == 1)
                  unless on (job, instance, target, sp_enterprise_id)
                    webex_broadworks_directory_sync_error_info{%(sel)s}
                )
            )
          |||)),
          // 1 while the last sync failed: a failing status (FAILED, or an unknown one that says
          // FAIL or ERROR), an end more than a minute after the last success, or an end with
          // no success on record that is not the clean COMPLETE shape; 0 otherwise, and 0 while
          // sync is disabled. NOT_SYNCED (waiting for the first sync) is 0.
          record('enterprise:webex_broadworks_directory_sync_failing:bool', q(|||
            max by (job, target, sp_enterprise_id) (
              webex_broadworks_directory_sync_status{%(sel)s,status=~"(?i:.*(fail|error).*)"}
              or
                (
                    webex_broadworks_directory_sync_last_end_timestamp_seconds{%(sel)s}
                  - webex_broadworks_directory_sync_last_success_timestamp_seconds{%(sel)s}
                  > bool 60
                )
              or
                (
                  webex_broadworks_directory_sync_last_end_timestamp_seconds{%(sel)s} * 0 + 1
                  unless on (job, instance, target, sp_enterprise_id)
                    webex_broadworks_directory_sync_last_success_timestamp_seconds{%(sel)s}
                  unless on (job, instance, target, sp_enterprise_id)
                    (
                      webex_broadworks_directory_sync_status{%(sel)s,status="COMPLETE"} == 1
                      unless on (job, instance, target, sp_enterprise_id)
                        webex_broadworks_directory_sync_error_info{%(sel)s}
                    )
                )
            )
            * on (job, target, sp_enterprise_id)
              max by (job, target, sp_enterprise_id) (webex_broadworks_directory_sync_enabled{%(sel)s})
          |||)),
          // Seconds since the last success, for enterprises whose sync is enabled.
          record('enterprise:webex_broadworks_directory_sync_since_last_success:seconds', q(|||
            time() - enterprise:webex_broadworks_directory_sync_last_success_timestamp_seconds:max{%(sel)s}
            and on (job, target, sp_enterprise_id)
              enterprise:webex_broadworks_directory_sync_enabled:max{%(sel)s} == 1
          |||)),
          record('target:webex_broadworks_directory_sync_failing:sum', q(|||
            sum by (job, target) (enterprise:webex_broadworks_directory_sync_failing:bool{%(sel)s})
          |||)),
          record('target:webex_broadworks_directory_sync_enabled:sum', q(|||
            sum by (job, target) (enterprise:webex_broadworks_directory_sync_enabled:max{%(sel)s})
          |||)),
          record('target:webex_broadworks_directory_sync_failing:ratio', q(|||
            target:webex_broadworks_directory_sync_failing:sum{%(sel)s}
            / on (job, target) target:webex_broadworks_directory_sync_enabled:sum{%(sel)s}
          |||)),
          record('target_status:webex_broadworks_directory_sync_status:sum', q(|||
            sum by (job, target, status) (
              max by (job, target, sp_enterprise_id, status) (webex_broadworks_directory_sync_status{%(sel)s})
            )
          |||)),
    ],
    lists: [
          record('target:webex_broadworks_enterprises:max', q(|||
            max by (job, target) (webex_broadworks_enterprises{%(sel)s})
          |||)),
          record('target_admin:webex_partner_managed_orgs:max', q(|||
            max by (job, target, admin) (webex_partner_managed_orgs{%(sel)s})
          |||)),
          record('target:voss_spark_customers:max', q(|||
            max by (job, target) (voss_spark_customers{%(sel)s})
          |||)),
          record('target:commvault_organizations:max', q(|||
            max by (job, target) (commvault_organizations{%(sel)s})
          |||)),
    ],
    commvault: [
          record('organization:commvault_organization_devices:max', q(|||
            max by (%s) (commvault_organization_devices{%%(sel)s})
          ||| % keyCV)),
          record('organization:commvault_organization_users:max', q(|||
            max by (%s) (commvault_organization_users{%%(sel)s})
          ||| % keyCV)),
    ],
    voss: [
          record('customer:voss_spark_customer_access_token_expiry_timestamp_seconds:max', q(|||
            max by (%s) (voss_spark_customer_access_token_expiry_timestamp_seconds{%%(sel)s})
          ||| % keyVoss)),
          record('customer:voss_spark_customer_refresh_token_expiry_timestamp_seconds:max', q(|||
            max by (%s) (voss_spark_customer_refresh_token_expiry_timestamp_seconds{%%(sel)s})
          ||| % keyVoss)),
          // How long ago the customer's last token (the refresh token, else the access token)
          // expired; negative while it is valid.
          record('customer:voss_spark_customer_tokens_expired:seconds', q(|||
            time() - (
              customer:voss_spark_customer_refresh_token_expiry_timestamp_seconds:max{%(sel)s}
              or
                customer:voss_spark_customer_access_token_expiry_timestamp_seconds:max{%(sel)s}
            )
          |||)),
          // 1 for an abandoned customer: its last token expired longer ago than the threshold.
          record('customer:voss_spark_customer_abandoned:bool', q(|||
            customer:voss_spark_customer_tokens_expired:seconds{%%(sel)s} > bool %d
          ||| % c.vossAbandonedSeconds)),
          // 1 while the token has expired, 0 while valid; abandoned customers have no series.
          record('customer:voss_spark_customer_access_token_expired:bool', q(|||
            time() - customer:voss_spark_customer_access_token_expiry_timestamp_seconds:max{%(sel)s} >= bool 0
            unless on (job, target, hierarchy, customer_name)
              customer:voss_spark_customer_abandoned:bool{%(sel)s} == 1
          |||)),
          record('customer:voss_spark_customer_refresh_token_expired:bool', q(|||
            time() - customer:voss_spark_customer_refresh_token_expiry_timestamp_seconds:max{%(sel)s} >= bool 0
            unless on (job, target, hierarchy, customer_name)
              customer:voss_spark_customer_abandoned:bool{%(sel)s} == 1
          |||)),
    ],
    exporter: [
          // Polls of the collector's own interval since its last success.
          record('target_collector:tenant_exporter_polls_since_success:ratio', q(|||
            (
              time()
              - max by (job, collector, target) (tenant_exporter_collector_last_success_timestamp_seconds{%(sel)s})
            )
            / on (job, collector, target)
              max by (job, collector, target) (tenant_exporter_collector_interval_seconds{%(sel)s})
          |||)),
          // 1 while the collector has missed the configured number of its own polls (or has
          // failed that many collections since the exporter started) and is not yet stale.
          record('target_collector:tenant_exporter_collector_failing:bool', q(|||
            (
              (
                (min by (job, collector, target) (tenant_exporter_collector_success{%%(sel)s}) == bool 0)
                * on (job, collector, target)
                  (target_collector:tenant_exporter_polls_since_success:ratio{%%(sel)s} >= bool %(n)d)
              )
              or on (job, collector, target)
              (
                (min by (job, collector, target) (tenant_exporter_collector_success{%%(sel)s}) == bool 0)
                * on (job, collector, target)
                  (max by (job, collector, target) (tenant_exporter_collections_total{%%(sel)s}) >= bool %(n)d)
              )
            )
            * on (job, collector, target)
              (max by (job, collector, target) (tenant_exporter_collector_stale{%%(sel)s}) == bool 0)
          ||| % { n: c.collectorMissedPolls })),
    ],
  },

  // ---------------------------------------------------------------------------------------
  exporter:: {
    local t = c.teams.exporter,
    groups: [{
      name: 'tenant-exporter',
      rules: $.recording.exporter + [
        alert('TenantExporterDown', 'critical', t, 'exporter', c.exporterDownFor,
              q('up{%(sel)s} == 0'),
              'Prometheus cannot scrape tenant-exporter.',
              |||
                Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for
                %s: the targets it collects have no current data and their alerts cannot fire.
              ||| % c.exporterDownFor, keep=false),
        alert('TenantExporterAbsent', 'critical', t, 'exporter', c.exporterAbsentFor,
              q('absent(up{%(sel)s})'),
              'tenant-exporter has disappeared from Prometheus target discovery.',
              |||
                Prometheus has had no target in job {{ $labels.job }} for %s: no tenant
                metrics are collected and no tenant alert can fire.
              ||| % c.exporterAbsentFor, keep=false),
        alert('TenantExporterCollectorFailing', 'warning', t, 'collector', c.collectorFailingFor,
              q('target_collector:tenant_exporter_collector_failing:bool{%(sel)s} == 1'),
              'A tenant-exporter collector has missed several polls.',
              |||
                {{- $sel := printf "job=%q,collector=%q,target=%q" $labels.job $labels.collector $labels.target -}}
                Collector {{ $labels.collector }} of target {{ $labels.target }} has failed
                {{- with printf "target_collector:tenant_exporter_polls_since_success:ratio{%s}" $sel | query }}
                {{- range . }} for {{ .Value | printf "%.0f" }} of its polls; its last success was
                {{- end }}{{ end }}
                {{- with printf "time() - max(tenant_exporter_collector_last_success_timestamp_seconds{%s})" $sel | query }}
                {{- range . }} {{ .Value | humanizeDuration }} ago{{ end }}
                {{- else }} every collection since the exporter started{{ end }}.
                Its last good samples are still served until they go stale.
              |||),
        alert('TenantExporterCollectorStale', 'critical', t, 'collector', c.collectorStaleFor,
              q('max by (job, collector, target) (tenant_exporter_collector_stale{%(sel)s}) == 1'),
              "A tenant-exporter target's samples were dropped as stale.",
              |||
                Collector {{ $labels.collector }} of target {{ $labels.target }} has not succeeded
                within its stale_after, so its samples are no longer exported: every tenant of that
                target is unmonitored, and its tenant alerts are covered by this one.
              |||),
        alert('TenantExporterCredentialExpiringSoon', 'warning', t, 'collector', '1h',
              q(|||
                min by (job, target, credential) (
                  tenant_exporter_credential_expiry_timestamp_seconds{%%(sel)s,credential="refresh_token"}
                ) - time() > 0 < %d
              ||| % (c.credentialExpiringDays * 86400)),
              "The exporter's own upstream refresh token expires soon.",
              |||
                The {{ $labels.credential }} the exporter uses for target {{ $labels.target }}
                expires in {{ $value | humanizeDuration }}. After that the exporter cannot collect
                {{ $labels.target }} until someone authorizes it again.
              |||),
        alert('TenantExporterCredentialExpired', 'critical', t, 'collector', '10m',
              q(|||
                time() - max by (job, target, credential) (tenant_exporter_credential_expiry_timestamp_seconds{%(sel)s}) >= 0
              |||),
              "The exporter's own upstream credential has expired.",
              |||
                The {{ $labels.credential }} the exporter uses for target {{ $labels.target }}
                expired {{ $value | humanizeDuration }} ago and was not renewed: the exporter cannot
                collect {{ $labels.target }}.
              |||),
        alert('TenantExporterCredentialLocked', 'critical', t, 'collector', '5m',
              q(|||
                max by (job, target, credential) (tenant_exporter_credential_locked{%(sel)s}) == 1
              |||),
              "The upstream has locked the exporter's account.",
              |||
                The upstream of target {{ $labels.target }} reports the account behind the
                exporter's {{ $labels.credential }} locked: every collection of {{ $labels.target }}
                fails until an administrator unlocks it.
              |||),
      ],
    }],
  },

  // ---------------------------------------------------------------------------------------
  broadworks:: {
    local t = c.teams.broadworks,
    local errorsText = |||
      {{- with printf "group by (error_code, description, tracking_id) (webex_broadworks_directory_sync_error_info{%s})" $sel | query | sortByLabel "error_code" }}
      {{- range . }}; error {{ .Labels.error_code }} {{ .Labels.description }} (tracking id {{ .Labels.tracking_id }}){{ end }}{{ end -}}
    |||,
    local selText = '{{- $sel := printf "job=%q,target=%q,sp_enterprise_id=%q" $labels.job $labels.target $labels.sp_enterprise_id -}}',
    groups: [{
      name: 'tenant-exporter-webex-broadworks',
      rules: $.recording.broadworks + [
        alert('TenantExporterBroadworksDirectorySyncFailed', 'warning', t, 'tenant', c.broadworksFailedFor,
              q('enterprise:webex_broadworks_directory_sync_failing:bool{%(sel)s} == 1'),
              "A BroadWorks enterprise's last directory sync failed.",
              selText + |||
                The last directory sync of BroadWorks enterprise {{ $labels.sp_enterprise_id }}
                (target {{ $labels.target }}) failed
                {{- range printf "max by (status) (webex_broadworks_directory_sync_status{%s} == 1)" $sel | query }} with status {{ .Labels.status }}{{ end -}}
              ||| + errorsText + |||
                {{- with printf "enterprise:webex_broadworks_directory_sync_since_last_success:seconds{%s}" $sel | query }}; last success {{ range . }}{{ .Value | humanizeDuration }}{{ end }} ago{{ else }}; no successful sync on record{{ end }}.
              |||),
        alert('TenantExporterBroadworksDirectorySyncErrors', 'warning', t, 'tenant', c.broadworksErrorsFor,
              q(|||
                group by (job, target, sp_enterprise_id) (webex_broadworks_directory_sync_error_info{%(sel)s})
                unless on (job, target, sp_enterprise_id)
                  enterprise:webex_broadworks_directory_sync_failing:bool{%(sel)s} == 1
                unless on (job, target, sp_enterprise_id)
                  enterprise:webex_broadworks_directory_sync_enabled:max{%(sel)s} == 0
              |||),
              "A BroadWorks enterprise's directory sync reports errors.",
              selText + |||
                Directory sync of BroadWorks enterprise {{ $labels.sp_enterprise_id }} (target
                {{ $labels.target }}) completed but reported errors
              ||| + errorsText + |||
                : some users, machines or contacts were not synced.
              |||),
        alert('TenantExporterBroadworksDirectorySyncNoRecentSuccess', 'critical', t, 'tenant', c.broadworksFailedFor,
              q(|||
                (
                  enterprise:webex_broadworks_directory_sync_since_last_success:seconds{%%(sel)s} > %(nosuccess)d
                )
                or
                  (
                    enterprise:webex_broadworks_directory_sync_enabled:max{%%(sel)s} == 1
                    and on (job, target, sp_enterprise_id)
                      (enterprise:webex_broadworks_directory_sync_enabled:max{%%(sel)s} offset %(grace)s == 1)
                    unless on (job, target, sp_enterprise_id)
                      enterprise:webex_broadworks_directory_sync_last_success_timestamp_seconds:max{%%(sel)s}
                  )
              ||| % { nosuccess: c.broadworksNoSuccessSeconds, grace: c.broadworksFirstSyncGrace }),
              'A BroadWorks enterprise has had no successful directory sync for a day.',
              selText + |||
                Directory sync of BroadWorks enterprise {{ $labels.sp_enterprise_id }} (target
                {{ $labels.target }}) is enabled but
                {{ if gt $value 1.0 }}last succeeded {{ $value | humanizeDuration }} ago{{ else }}has
                no successful sync on record although it has been enabled for %s{{ end }}
              ||| % c.broadworksFirstSyncGrace + errorsText + |||
                : changes in BroadWorks are not reaching Webex.
              |||),
        alert('TenantExporterBroadworksDirectorySyncStuck', 'warning', t, 'tenant', '15m',
              q(|||
                max by (job, target, sp_enterprise_id) (
                  (time() - webex_broadworks_directory_sync_last_start_timestamp_seconds{%%(sel)s} > %d)
                  and on (job, instance, target, sp_enterprise_id)
                    webex_broadworks_directory_sync_status{%%(sel)s,status="IN_PROGRESS"} == 1
                )
              ||| % c.broadworksStuckSeconds),
              "A BroadWorks enterprise's directory sync has been in progress for hours.",
              |||
                Directory sync of BroadWorks enterprise {{ $labels.sp_enterprise_id }} (target
                {{ $labels.target }}) started {{ $value | humanizeDuration }} ago and is still
                IN_PROGRESS.
              |||),
        alert('TenantExporterBroadworksDirectorySyncFailingWidely', 'critical', t, 'target', c.broadworksFailedFor,
              q(|||
                target:webex_broadworks_directory_sync_failing:ratio{%%(sel)s} >= %(ratio)g
                and on (job, target)
                  target:webex_broadworks_directory_sync_failing:sum{%%(sel)s} >= %(min)d
              ||| % { ratio: c.broadworksWideFailureRatio, min: c.broadworksWideFailureMin }),
              "Directory sync fails for many of a BroadWorks target's enterprises.",
              |||
                {{- $sel := printf "job=%q,target=%q" $labels.job $labels.target -}}
                {{ $value | humanizePercentage }} of the enabled enterprises of target
                {{ $labels.target }}
                {{- with printf "target:webex_broadworks_directory_sync_failing:sum{%s}" $sel | query }} ({{ range . }}{{ .Value }}{{ end }}){{ end }}
                failed their last directory sync
                {{- with printf "topk(3, count by (error_code) (webex_broadworks_directory_sync_error_info{%s}))" $sel | query }}, most with error{{ range . }} {{ .Labels.error_code }}{{ end }}{{ end -}}
                : a BroadWorks cluster or the connection to it is down, not each enterprise.
              |||),
        alert('TenantExporterBroadworksDirectorySyncStatusUnknown', 'warning', t, 'target', c.broadworksStatusUnknownFor,
              q(|||
                count by (job, target, status) (
                  max by (job, target, sp_enterprise_id, status) (
                    webex_broadworks_directory_sync_status{%%(sel)s,status!~"%s"}
                  ) == 1
                )
              ||| % std.join('|', c.knownSyncStatuses)),
              'BroadWorks enterprises report a directory sync status these rules do not know.',
              |||
                {{ $value }} enterprise(s) of target {{ $labels.target }} report directory sync
                status {{ $labels.status }}, which these rules do not know: they treat it as a
                failure only if its name says FAIL or ERROR.
              |||),
      ],
    }],
  },

  // ---------------------------------------------------------------------------------------
  // Lists that come back empty or much shorter with HTTP 200 (lost scope, wrong starts_with,
  // moved hierarchy): the series vanish and every tenant alert would resolve.
  lists:: {
    local lists = [
      { list: 'broadworks_enterprises', team: c.teams.broadworks, rec: 'target:webex_broadworks_enterprises:max', by: 'job, target', tsel: 'printf "job=%q,target=%q" $labels.job $labels.target', what: 'BroadWorks enterprises' },
      { list: 'webex_managed_orgs', team: c.teams.webex, rec: 'target_admin:webex_partner_managed_orgs:max', by: 'job, target, admin', tsel: 'printf "job=%q,target=%q,admin=%q" $labels.job $labels.target $labels.admin', what: 'customer orgs managed by partner admin {{ $labels.admin }}' },
      { list: 'voss_spark_customers', team: c.teams.voss, rec: 'target:voss_spark_customers:max', by: 'job, target', tsel: 'printf "job=%q,target=%q" $labels.job $labels.target', what: 'VOSS SparkCustomers' },
      { list: 'commvault_organizations', team: c.teams.commvault, rec: 'target:commvault_organizations:max', by: 'job, target', tsel: 'printf "job=%q,target=%q" $labels.job $labels.target', what: 'Commvault organizations' },
    ],
    local p(l) = l { sel: c.selector, window: c.listWindow, ratio: 1 - c.listShrinkRatio, min: c.listShrinkMin },
    groups: [{
      name: 'tenant-exporter-lists',
      rules: $.recording.lists + [
        alert('TenantExporterTenantListEmptied', 'critical', l.team, 'target', c.listFor,
              |||
                %(rec)s{%(sel)s} == 0
                and on (%(by)s)
                  max_over_time(%(rec)s{%(sel)s}[%(window)s]) > 0
              ||| % p(l),
              "A target's list of tenants came back empty.",
              |||
                The list of %(what)s of target {{ $labels.target }} is empty although it held
                {{ with printf "max_over_time(%(rec)s{%%s}[%(window)s])" (%(tsel)s) | query }}{{ range . }}{{ .Value }}{{ end }}{{ end }}
                within %(window)s: the upstream answered but lists nothing (lost permission or scope,
                changed filter or hierarchy), and none of its tenants is monitored.
              ||| % p(l)) + { labels+: { list: l.list } }
        for l in lists
      ] + [
        alert('TenantExporterTenantListShrank', 'warning', l.team, 'target', c.listFor,
              |||
                max_over_time(%(rec)s{%(sel)s}[%(window)s]) - %(rec)s{%(sel)s} >= %(min)d
                and
                %(rec)s{%(sel)s} < %(ratio)g * max_over_time(%(rec)s{%(sel)s}[%(window)s])
                and
                %(rec)s{%(sel)s} > 0
              ||| % p(l),
              "A target's list of tenants shrank sharply.",
              |||
                The list of %(what)s of target {{ $labels.target }} holds {{ $value }} fewer than its
                highest count within %(window)s
                {{- with printf "%(rec)s{%%s}" (%(tsel)s) | query }}{{ range . }} (now {{ .Value }}){{ end }}{{ end }}:
                tenants were removed in bulk, or the upstream lists only part of them.
              ||| % p(l)) + { labels+: { list: l.list } }
        for l in lists
      ] + [
        // One object failing inside an otherwise successful collection keeps serving its old
        // values: its own last-success timestamp shows it.
        alert('TenantExporterCommvaultOrganizationNotRefreshed', 'warning', c.teams.commvault, 'tenant', c.objectFor,
              q(|||
                (
                  time() - max by (%s) (commvault_organization_last_success_timestamp_seconds{%%(sel)s})
                )
                > on (job, target) group_left
                  %d * max by (job, target) (tenant_exporter_collector_interval_seconds{%%(sel)s,collector="commvault_organizations"})
                unless on (job, target)
                  (max by (job, target) (tenant_exporter_collector_success{%%(sel)s,collector="commvault_organizations"}) == 0)
              ||| % [keyCV, c.objectMissedPolls]),
              "A Commvault organization's details have not been read for several polls.",
              |||
                {{- $sel := printf "job=%q,target=%q,organization_id=%q" $labels.job $labels.target $labels.organization_id -}}
                The details of Commvault organization {{ $labels.organization }} (id
                {{ $labels.organization_id }}
                {{- range printf "group by (company) (commvault_organization_info{%s})" $sel | query }}, company {{ .Labels.company }}{{ end -}}
                ) on target {{ $labels.target }} were last read {{ $value | humanizeDuration }} ago
                although the rest of the collection succeeds: its values on the dashboards are old.
              |||),
        alert('TenantExporterWebexAdminNotRefreshed', 'warning', c.teams.webex, 'tenant', c.objectFor,
              q(|||
                (
                  time() - max by (job, target, admin) (webex_partner_admin_last_success_timestamp_seconds{%%(sel)s})
                )
                > on (job, target) group_left
                  %d * max by (job, target) (tenant_exporter_collector_interval_seconds{%%(sel)s,collector="webex_managed_orgs"})
                unless on (job, target)
                  (max by (job, target) (tenant_exporter_collector_success{%%(sel)s,collector="webex_managed_orgs"}) == 0)
              ||| % c.objectMissedPolls),
              "A Webex partner admin's managed orgs have not been read for several polls.",
              |||
                The managed-org list of partner admin {{ $labels.admin }} on target
                {{ $labels.target }} was last read {{ $value | humanizeDuration }} ago although the
                rest of the collection succeeds: its orgs on the dashboards are old.
              |||),
      ],
    }],
  },

  // ---------------------------------------------------------------------------------------
  voss:: {
    local t = c.teams.voss,
    local who = |||
      {{ $sel := printf "job=%q,target=%q,hierarchy=%q,customer_name=%q" $labels.job $labels.target $labels.hierarchy $labels.customer_name -}}
      customer {{ $labels.customer_name }} ({{ $labels.hierarchy }}
      {{- range printf "group by (pkid) (voss_spark_customer_info{%s})" $sel | query }}, pkid {{ .Labels.pkid }}{{ end -}}
      ) on VOSS target {{ $labels.target }}
    |||,
    groups: [{
      name: 'tenant-exporter-voss',
      rules: $.recording.voss + [
        alert('TenantExporterVossAccessTokenExpiring', 'warning', t, 'tenant', c.vossFor,
              q(|||
                customer:voss_spark_customer_access_token_expiry_timestamp_seconds:max{%%(sel)s} - time() > 0 < %d
              ||| % c.vossAccessExpiringSeconds),
              "A VOSS SparkCustomer's Webex access token expires soon.",
              'The Webex access token of ' + who + |||
                expires in {{ $value | humanizeDuration }} and VOSS has not refreshed it yet.
              |||),
        alert('TenantExporterVossAccessTokenExpired', 'critical', t, 'tenant', c.vossFor,
              q(|||
                (
                  time() - customer:voss_spark_customer_access_token_expiry_timestamp_seconds:max{%(sel)s}
                )
                and on (job, target, hierarchy, customer_name)
                  customer:voss_spark_customer_access_token_expired:bool{%(sel)s} == 1
              |||),
              "A VOSS SparkCustomer's Webex access token has expired.",
              'The Webex access token of ' + who + |||
                expired {{ $value | humanizeDuration }} ago: VOSS cannot manage that customer's
                Webex organization until the token is refreshed.
              |||),
        alert('TenantExporterVossRefreshTokenExpiring', 'warning', t, 'tenant', c.vossFor,
              q(|||
                customer:voss_spark_customer_refresh_token_expiry_timestamp_seconds:max{%%(sel)s} - time() > 0 < %d
              ||| % c.vossRefreshExpiringWarningSeconds),
              "A VOSS SparkCustomer's Webex refresh token expires within weeks.",
              'The Webex refresh token of ' + who + |||
                expires in {{ $value | humanizeDuration }}; after that the customer must authorize VOSS again.
              |||),
        alert('TenantExporterVossRefreshTokenExpiring', 'critical', t, 'tenant', c.vossFor,
              q(|||
                customer:voss_spark_customer_refresh_token_expiry_timestamp_seconds:max{%%(sel)s} - time() > 0 < %d
              ||| % c.vossRefreshExpiringCriticalSeconds),
              "A VOSS SparkCustomer's Webex refresh token expires within days.",
              'The Webex refresh token of ' + who + |||
                expires in {{ $value | humanizeDuration }}; after that the customer must authorize VOSS again.
              |||),
        alert('TenantExporterVossRefreshTokenExpired', 'critical', t, 'tenant', c.vossFor,
              q(|||
                (
                  time() - customer:voss_spark_customer_refresh_token_expiry_timestamp_seconds:max{%(sel)s}
                )
                and on (job, target, hierarchy, customer_name)
                  customer:voss_spark_customer_refresh_token_expired:bool{%(sel)s} == 1
              |||),
              "A VOSS SparkCustomer's Webex refresh token has expired.",
              'The Webex refresh token of ' + who + |||
                expired {{ $value | humanizeDuration }} ago: the customer must authorize VOSS again
                before VOSS can manage their Webex organization.
              |||),
        alert('TenantExporterVossCustomerAbandoned', 'info', t, 'tenant', '1h',
              q(|||
                customer:voss_spark_customer_tokens_expired:seconds{%(sel)s}
                and on (job, target, hierarchy, customer_name)
                  customer:voss_spark_customer_abandoned:bool{%(sel)s} == 1
              |||),
              'A VOSS SparkCustomer has had no valid Webex token for a long time.',
              'The Webex tokens of ' + who + |||
                expired {{ $value | humanizeDuration }} ago: the customer looks abandoned. Remove it
                from VOSS, or have it authorize VOSS again.
              |||),
        alert('TenantExporterVossTokensExpiringWidely', 'critical', t, 'target', c.vossFor,
              q(|||
                count by (job, target) (
                  (time() - customer:voss_spark_customer_access_token_expiry_timestamp_seconds:max{%%(sel)s} >= 0 < %(w)d)
                  or
                    label_replace(
                      time() - customer:voss_spark_customer_refresh_token_expiry_timestamp_seconds:max{%%(sel)s} >= 0 < %(w)d,
                      "token", "refresh", "", ""
                    )
                ) >= %(min)d
              ||| % { w: c.vossWideExpiredWindowSeconds, min: c.vossWideExpiredMin }),
              'Many Webex tokens of one VOSS target expired within the last hour.',
              |||
                {{ $value }} Webex tokens of SparkCustomers on VOSS target {{ $labels.target }}
                expired within the last hour: VOSS's token refresh, or its connection to Webex, is
                broken for the whole target, not for each customer.
              |||),
      ],
    }],
  },

  // ---------------------------------------------------------------------------------------
  commvault:: {
    local t = c.teams.commvault,
    local drop(name, severity, rec, what, why) =
      local p = { sel: c.selector, rec: rec, w: c.commvaultDropWindow, min: c.commvaultDropMin, ratio: 1 - c.commvaultDropRatio };
      alert(name, severity, t, 'tenant', c.commvaultFor,
            |||
              max_over_time(%(rec)s{%(sel)s}[%(w)s]) - %(rec)s{%(sel)s} >= %(min)d
              and
              %(rec)s{%(sel)s} < %(ratio)g * max_over_time(%(rec)s{%(sel)s}[%(w)s])
            ||| % p,
            "A Commvault organization's %s count dropped sharply." % what,
            |||
              {{- $sel := printf "job=%%q,target=%%q,organization_id=%%q" $labels.job $labels.target $labels.organization_id -}}
              Commvault organization {{ $labels.organization }} (id {{ $labels.organization_id }}
              {{- range printf "group by (company) (commvault_organization_info{%%s})" $sel | query }}, company {{ .Labels.company }}{{ end -}}
              ) on target {{ $labels.target }} has {{ $value }} fewer %(what)ss than its highest
              count of the last %(w)s
              {{- with printf "%(rec)s{%%s}" $sel | query }}{{ range . }} (now {{ .Value }}){{ end }}{{ end }}: %(why)s
            ||| % (p { what: what, why: why })),
    groups: [{
      name: 'tenant-exporter-commvault',
      rules: $.recording.commvault + [
        drop('TenantExporterCommvaultDevicesDropped', 'warning', 'organization:commvault_organization_devices:max', 'device',
             'agents may have been lost or uninstalled, and those machines may no longer be backed up.'),
        drop('TenantExporterCommvaultUsersDropped', 'info', 'organization:commvault_organization_users:max', 'user',
             'a directory (AD/LDAP) sync of that organization may have failed or been changed.'),
      ],
    }],
  },

  // File name (alerts/<name>.yml) -> rule file.
  ruleFiles:: {
    'tenant-exporter': $.exporter,
    'webex-broadworks': $.broadworks,
    lists: $.lists,
    voss: $.voss,
    commvault: $.commvault,
  },
}
