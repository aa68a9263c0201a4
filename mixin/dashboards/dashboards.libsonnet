// The Grafana dashboards. Built for a 10,000-tenant estate: per-target summaries and tables
// first, per-object time series only as topk() behind a tenant variable. Counts read the
// recording rules the alerts use (0/1 per object), so a stat shows exactly what alerts.
local g = import 'grafana.libsonnet';

{
  local c = $._config,
  local F = 'job=~"$job",target=~"$target"',
  local runbook(alert) = g.link('Runbook: ' + alert, c.runbookURL % std.asciiLower(alert)),
  local targetVar(metrics) = g.variable('target', 'Target', 'label_values({__name__=~"%s",job=~"$job"}, target)' % metrics),
  local f(text) = text % { F: F, topn: c.topN },

  // Rows: enterprises failing now or with a failed sync counted in the last 24 hours (the
  // counters do not count the sync already finished when the exporter first saw it).
  local rows = |||
    (
      max by (target, sp_enterprise_id) (enterprise:webex_broadworks_directory_sync_failing:bool{%(F)s} == 1)
      or on (target, sp_enterprise_id)
        (sum by (target, sp_enterprise_id) (increase(webex_broadworks_directory_syncs_total{%(F)s,result="failed"}[1d])) > 0)
    )
  |||,
  local counted(result) = f('sum by (target, sp_enterprise_id) (increase(webex_broadworks_directory_syncs_total{%(F)s,result="' + result + '"}[1d])) and on (target, sp_enterprise_id) ' + rows),

  grafanaDashboards:: {
    // -------------------------------------------------------------------------------------
    overview: g.dashboard(c, 'overview', 'Start here: what is firing, and every target with its objects, failures, staleness and last successful collection. See alerts/runbook.md.', ['overview'], [
      targetVar('tenant_exporter_collector_success'),
    ], [
      g.row('Alerts'),
      g.alertList('Firing and pending alerts', 'Alerts of this job from the Prometheus rules (alerts/*.yml), with their runbook links in the alert details.', '$job', w=12),
      g.table('Alerts by target', 'ALERTS of this job, one row per alert and target; the runbook of each alert name is linked.', [
        f('count by (alertname, severity, target, alertstate) (ALERTS{%(F)s})'),
      ], columns={ alertname: 'Alert', severity: 'Severity', target: 'Target', alertstate: 'State', 'Value': 'Alerts' }, sortBy='Severity', w=12, h=8,
         links=[g.link('Runbook (one section per alert name)', std.strReplace(c.runbookURL, '#%s', ''))]),
      g.row('Targets'),
      g.table('Per-target summary', 'One row per target and collector: tenants listed, tenants failing (BroadWorks syncs failing, VOSS access tokens expired), whether the collection fails or is stale, and how long ago it last succeeded.', [
        f('max by (target, collector) (tenant_exporter_collector_success{%(F)s})'),
        f(|||
          label_replace(target:webex_broadworks_enterprises:max{%(F)s}, "collector", "webex_broadworks", "", "")
          or label_replace(sum by (job, target) (target_admin:webex_partner_managed_orgs:max{%(F)s}), "collector", "webex_managed_orgs", "", "")
          or label_replace(target:voss_spark_customers:max{%(F)s}, "collector", "voss_spark_customers", "", "")
          or label_replace(target:commvault_organizations:max{%(F)s}, "collector", "commvault_organizations", "", "")
        |||),
        f(|||
          label_replace(target:webex_broadworks_directory_sync_failing:sum{%(F)s}, "collector", "webex_broadworks", "", "")
          or label_replace(sum by (job, target) (customer:voss_spark_customer_access_token_expired:bool{%(F)s}), "collector", "voss_spark_customers", "", "")
        |||),
        f('max by (target, collector) (target_collector:tenant_exporter_collector_failing:bool{%(F)s})'),
        f('max by (target, collector) (tenant_exporter_collector_stale{%(F)s})'),
        f('time() - max by (target, collector) (tenant_exporter_collector_last_success_timestamp_seconds{%(F)s})'),
        f('sum by (target, collector) (increase(tenant_exporter_collection_failures_total{%(F)s}[1d]))'),
      ], columns={ target: 'Target', collector: 'Collector', 'Value #A': 'Last collection OK', 'Value #B': 'Tenants', 'Value #C': 'Tenants failing', 'Value #D': 'Collector failing', 'Value #E': 'Stale', 'Value #F': 'Since last success', 'Value #G': 'Failed collections (24h)' },
         hide=['job'], sortBy='Since last success', desc=true, units={ 'Since last success': 's' }, h=10),
      g.row('Counts'),
      g.stat('Targets stale', 'Targets whose samples were dropped after stale_after: TenantExporterCollectorStale.', f('sum(tenant_exporter_collector_stale{%(F)s})'), links=[runbook('TenantExporterCollectorStale')]),
      g.stat('Collectors failing', 'Collectors that missed their configured polls: TenantExporterCollectorFailing.', f('sum(target_collector:tenant_exporter_collector_failing:bool{%(F)s})'), color='orange', links=[runbook('TenantExporterCollectorFailing')]),
      g.stat('BroadWorks syncs failing', 'Enterprises whose last directory sync failed: TenantExporterBroadworksDirectorySyncFailed.', f('sum(enterprise:webex_broadworks_directory_sync_failing:bool{%(F)s})'), color='orange', links=[runbook('TenantExporterBroadworksDirectorySyncFailed')]),
      g.stat('VOSS access tokens expired', 'SparkCustomers whose access token expired (abandoned customers excepted): TenantExporterVossAccessTokenExpired.', f('sum(customer:voss_spark_customer_access_token_expired:bool{%(F)s})'), links=[runbook('TenantExporterVossAccessTokenExpired')]),
      g.stat('Tenants listed', 'BroadWorks enterprises, managed orgs, SparkCustomers and Commvault organizations listed.', f(|||
        sum(target:webex_broadworks_enterprises:max{%(F)s}) + sum(target_admin:webex_partner_managed_orgs:max{%(F)s})
        + sum(target:voss_spark_customers:max{%(F)s}) + sum(target:commvault_organizations:max{%(F)s})
      |||), bad=null),
      g.stat('Exporter version', 'Versions running in this job.', 'count by (version) (tenant_exporter_build_info{job=~"$job"})', bad=null) { options+: { textMode: 'name' } },
    ]),

    // -------------------------------------------------------------------------------------
    broadworks: g.dashboard(c, 'broadworks', 'Directory sync of every Webex BroadWorks enterprise: failures of the last 24 hours with error and tracking id, per-target summary, status, time since the last success. See alerts/runbook.md.', ['webex', 'broadworks'], [
      targetVar('webex_broadworks_enterprises'),
      g.variable('enterprise', 'Enterprise', 'label_values(enterprise:webex_broadworks_directory_sync_enabled:max{%s}, sp_enterprise_id)' % F),
    ], [
      g.row('Overview'),
      g.stat('Enterprises', 'BroadWorks enterprises listed on the selected targets.', f('sum(target:webex_broadworks_enterprises:max{%(F)s})'), bad=null),
      g.stat('Last sync failing', 'Enterprises whose last sync failed (the recording rule TenantExporterBroadworksDirectorySyncFailed reads).', f('sum(enterprise:webex_broadworks_directory_sync_failing:bool{%(F)s})'), links=[runbook('TenantExporterBroadworksDirectorySyncFailed')]),
      g.stat('No success for a day', 'Enabled enterprises without a successful sync for a day: TenantExporterBroadworksDirectorySyncNoRecentSuccess.', f('sum(enterprise:webex_broadworks_directory_sync_since_last_success:seconds{%%(F)s} > bool %d)' % c.broadworksNoSuccessSeconds), links=[runbook('TenantExporterBroadworksDirectorySyncNoRecentSuccess')]),
      g.stat('Syncs failed (24h)', 'Syncs counted as failed in the last 24 hours (webex_broadworks_directory_syncs_total).', f('sum(increase(webex_broadworks_directory_syncs_total{%(F)s,result="failed"}[1d]))'), color='orange'),
      g.stat('In progress', 'Enterprises whose sync is running now.', f('sum(target_status:webex_broadworks_directory_sync_status:sum{%(F)s,status="IN_PROGRESS"})'), bad=null),
      g.stat('Sync disabled', 'Enterprises with directory sync switched off.', f('sum(enterprise:webex_broadworks_directory_sync_enabled:max{%(F)s} == bool 0)'), bad=null),
      g.row('Failures'),
      g.table('Failed syncs in the last 24 hours', 'Every enterprise failing now or with a failed sync in the last 24 hours: failed and successful syncs counted in 24 hours, the current error with its description and lastSyncTrackingId (quote it to Cisco TAC), and how long ago it last succeeded.', [
        counted('failed'),
        counted('success'),
        f('group by (target, sp_enterprise_id, error_code, description, tracking_id) (webex_broadworks_directory_sync_error_info{%(F)s}) and on (target, sp_enterprise_id) ' + rows),
        f('max by (target, sp_enterprise_id) (enterprise:webex_broadworks_directory_sync_since_last_success:seconds{%(F)s}) and on (target, sp_enterprise_id) ' + rows),
      ], columns={ target: 'Target', sp_enterprise_id: 'Enterprise', error_code: 'Error', description: 'Description', tracking_id: 'Tracking id', 'Value #A': 'Failed (24h)', 'Value #B': 'Succeeded (24h)', 'Value #D': 'Since last success' },
         hide=['Value #C'], sortBy='Since last success', desc=true, units={ 'Since last success': 's' }, h=10, links=[runbook('TenantExporterBroadworksDirectorySyncFailed')]),
      g.table('Per target', 'Enterprises listed and enabled, failing now, and the failing share that TenantExporterBroadworksDirectorySyncFailingWidely pages on.', [
        f('max by (target) (target:webex_broadworks_enterprises:max{%(F)s})'),
        f('max by (target) (target:webex_broadworks_directory_sync_enabled:sum{%(F)s})'),
        f('max by (target) (target:webex_broadworks_directory_sync_failing:sum{%(F)s})'),
        f('max by (target) (target:webex_broadworks_directory_sync_failing:ratio{%(F)s})'),
      ], columns={ target: 'Target', 'Value #A': 'Enterprises', 'Value #B': 'Sync enabled', 'Value #C': 'Failing', 'Value #D': 'Failing share' },
         sortBy='Failing share', desc=true, units={ 'Failing share': 'percentunit' }, w=12, h=8, links=[runbook('TenantExporterBroadworksDirectorySyncFailingWidely')]),
      g.timeseries('Enterprises by status', 'Per status over time, from the per-target recording rule.', [
        g.target(f('sum by (status) (target_status:webex_broadworks_directory_sync_status:sum{%(F)s})'), legend='{{status}}'),
      ], stack=true),
      g.row('Enterprises'),
      g.timeseries('Longest without a successful sync (top %d)' % c.topN, 'The enterprises (of the Enterprise variable) that have gone longest without a successful sync.', [
        g.target(f('topk(%(topn)d, enterprise:webex_broadworks_directory_sync_since_last_success:seconds{%(F)s,sp_enterprise_id=~"$enterprise"})'), legend='{{target}} {{sp_enterprise_id}}'),
      ], unit='s', w=24),
      g.row('Changes and objects'),
      g.timeseries('Changes synced', 'Objects added, updated and deleted by the syncs counted in the interval (webex_broadworks_directory_sync_changes_total).', [
        g.target(f('sum by (object, action) (increase(webex_broadworks_directory_sync_changes_total{%(F)s}[$__rate_interval]))'), legend='{{object}} {{action}}'),
      ]),
      g.timeseries('External identities and contacts', 'Users and machines in Webex, and contacts in the contact service, summed over the enterprises of each target.', [
        g.target(f('max by (target, object) (webex_broadworks_target_external_identities{%(F)s})'), legend='{{target}} {{object}} identities'),
        g.target(f('max by (target, object) (webex_broadworks_target_contacts{%(F)s})'), 'B', legend='{{target}} {{object}} contacts'),
      ]),
    ]),

    // -------------------------------------------------------------------------------------
    tokens: g.dashboard(c, 'tokens', "Webex tokens of every VOSS SparkCustomer, sorted by the refresh token's time left, and the exporter's own credentials. See alerts/runbook.md.", ['voss', 'webex', 'tokens'], [
      targetVar('voss_spark_customers|tenant_exporter_credential_expiry_timestamp_seconds'),
      g.variable('customer', 'Customer', 'label_values(customer:voss_spark_customer_access_token_expiry_timestamp_seconds:max{%s}, customer_name)' % F),
    ], [
      g.row('VOSS SparkCustomer Webex tokens'),
      g.stat('Access tokens expired', 'Expired access tokens, abandoned customers excepted: TenantExporterVossAccessTokenExpired.', f('sum(customer:voss_spark_customer_access_token_expired:bool{%(F)s})'), links=[runbook('TenantExporterVossAccessTokenExpired')]),
      g.stat('Refresh tokens expired', 'Expired refresh tokens, abandoned customers excepted: TenantExporterVossRefreshTokenExpired.', f('sum(customer:voss_spark_customer_refresh_token_expired:bool{%(F)s})'), links=[runbook('TenantExporterVossRefreshTokenExpired')]),
      g.stat('Abandoned customers', 'Customers whose last token expired more than %d days ago: TenantExporterVossCustomerAbandoned.' % (c.vossAbandonedSeconds / 86400), f('sum(customer:voss_spark_customer_abandoned:bool{%(F)s})'), color='blue', links=[runbook('TenantExporterVossCustomerAbandoned')]),
      g.stat('Customers with tokens', 'SparkCustomers with an access token expiry.', f('count(customer:voss_spark_customer_access_token_expiry_timestamp_seconds:max{%(F)s})'), bad=null),
      g.table('SparkCustomer tokens by refresh token left', 'One row per customer with its pkid (what VOSS support asks for), sorted by the time left on the refresh token: the top rows must authorize VOSS again first. Negative: expired.', [
        f('min by (target, hierarchy, customer_name) (customer:voss_spark_customer_refresh_token_expiry_timestamp_seconds:max{%(F)s,customer_name=~"$customer"}) - time()'),
        f('min by (target, hierarchy, customer_name) (customer:voss_spark_customer_access_token_expiry_timestamp_seconds:max{%(F)s,customer_name=~"$customer"}) - time()'),
        f('group by (target, hierarchy, customer_name, pkid) (voss_spark_customer_info{%(F)s,customer_name=~"$customer"})'),
      ], columns={ target: 'Target', hierarchy: 'Hierarchy', customer_name: 'Customer', pkid: 'pkid', 'Value #A': 'Refresh token left', 'Value #B': 'Access token left' },
         hide=['Value #C'], sortBy='Refresh token left', desc=false, units={ 'Refresh token left': 's', 'Access token left': 's' }, h=12,
         links=[runbook('TenantExporterVossRefreshTokenExpiring')]),
      g.timeseries('Refresh tokens closest to expiry (top %d)' % c.topN, 'Time left on the refresh tokens (of the Customer variable) that expire first.', [
        g.target(f('bottomk(%(topn)d, customer:voss_spark_customer_refresh_token_expiry_timestamp_seconds:max{%(F)s,customer_name=~"$customer"} - time())'), legend='{{target}} {{customer_name}}'),
      ], unit='s', w=24),
      g.row("The exporter's own credentials"),
      g.table('Exporter credentials by time left', 'When the Webex OAuth tokens the exporter itself uses expire.', [
        f('min by (target, credential) (tenant_exporter_credential_expiry_timestamp_seconds{%(F)s}) - time()'),
      ], columns={ target: 'Target', credential: 'Credential', Value: 'Time left' }, sortBy='Time left', units={ 'Time left': 's' }, w=12, h=8,
         links=[runbook('TenantExporterCredentialExpiringSoon')]),
      g.timeseries('Exporter credential refreshes', 'OAuth refreshes and rotations, Commvault logins and renewals.', [
        g.target(f('sum by (target, credential) (increase(tenant_exporter_credential_refreshes_total{%(F)s}[$__rate_interval]))'), legend='{{target}} {{credential}}'),
      ]),
    ]),

    // -------------------------------------------------------------------------------------
    inventory: g.dashboard(c, 'inventory', 'Tenants per target over time (a list that empties or shrinks pages), managed orgs per admin, Commvault organizations with their company names. See alerts/runbook.md.', ['webex', 'voss', 'commvault', 'inventory'], [
      targetVar('webex_partner_managed_orgs|webex_broadworks_enterprises|voss_spark_customers|commvault_organizations'),
      g.variable('organization', 'Organization', 'label_values(organization:commvault_organization_devices:max{%s}, organization)' % F),
    ], [
      g.row('Tenants'),
      g.stat('BroadWorks enterprises', 'Listed on the selected targets.', f('sum(target:webex_broadworks_enterprises:max{%(F)s})'), bad=null, w=6),
      g.stat('Webex customer orgs managed', 'Summed over the partner admins.', f('sum(target_admin:webex_partner_managed_orgs:max{%(F)s})'), bad=null, w=6),
      g.stat('VOSS SparkCustomers', 'Listed on the selected targets.', f('sum(target:voss_spark_customers:max{%(F)s})'), bad=null, w=6),
      g.stat('Commvault organizations', 'Listed on the selected targets.', f('sum(target:commvault_organizations:max{%(F)s})'), bad=null, w=6),
      g.timeseries('Tenants per target', 'The lists TenantExporterTenantListEmptied and TenantExporterTenantListShrank watch.', [
        g.target(f('target:webex_broadworks_enterprises:max{%(F)s}'), legend='{{target}} enterprises'),
        g.target(f('sum by (target) (target_admin:webex_partner_managed_orgs:max{%(F)s})'), 'B', legend='{{target}} managed orgs'),
        g.target(f('target:voss_spark_customers:max{%(F)s}'), 'C', legend='{{target}} SparkCustomers'),
        g.target(f('target:commvault_organizations:max{%(F)s}'), 'D', legend='{{target}} organizations'),
      ], w=24, links=[runbook('TenantExporterTenantListShrank'), runbook('TenantExporterTenantListEmptied')]),
      g.timeseries('Managed customer orgs per partner admin (top %d)' % c.topN, 'Per admin, largest first.', [
        g.target(f('topk(%(topn)d, target_admin:webex_partner_managed_orgs:max{%(F)s})'), legend='{{target}} {{admin}}'),
      ], w=24),
      g.row('Commvault organizations'),
      g.table('Organizations', 'One row per organization with its company name (what Commvault support asks for), users and devices.', [
        f('group by (target, organization_id, organization, company) (commvault_organization_info{%(F)s,organization=~"$organization"})'),
        f('max by (target, organization_id, organization) (organization:commvault_organization_users:max{%(F)s,organization=~"$organization"})'),
        f('max by (target, organization_id, organization) (organization:commvault_organization_devices:max{%(F)s,organization=~"$organization"})'),
      ], columns={ target: 'Target', organization_id: 'Id', organization: 'Organization', company: 'Company', 'Value #B': 'Users', 'Value #C': 'Devices' },
         hide=['Value #A'], sortBy='Devices', desc=true, h=10, links=[runbook('TenantExporterCommvaultOrganizationNotRefreshed')]),
      g.timeseries('Devices per organization (top %d)' % c.topN, 'Devices of the largest organizations (of the Organization variable).', [
        g.target(f('topk(%(topn)d, organization:commvault_organization_devices:max{%(F)s,organization=~"$organization"})'), legend='{{target}} {{organization}}'),
      ], links=[runbook('TenantExporterCommvaultDevicesDropped')]),
      g.timeseries('Users per organization (top %d)' % c.topN, 'Users of the largest organizations (of the Organization variable).', [
        g.target(f('topk(%(topn)d, organization:commvault_organization_users:max{%(F)s,organization=~"$organization"})'), legend='{{target}} {{organization}}'),
      ], links=[runbook('TenantExporterCommvaultUsersDropped')]),
    ]),

    // -------------------------------------------------------------------------------------
    health: g.dashboard(c, 'health', "The exporter itself: scrape, collectors, polls missed, upstream requests and retries, process. See alerts/runbook.md.", ['exporter'], [
      g.variable('instance', 'Instance', 'label_values(tenant_exporter_build_info{job=~"$job"}, instance)'),
      targetVar('tenant_exporter_collector_success'),
    ], [
      g.row('Overview'),
      g.stat('Scrape', 'up of the selected instances (1: scraped).', 'min(up{job=~"$job",instance=~"$instance"})', bad=null, links=[runbook('TenantExporterDown')]),
      g.stat('Collectors failing', 'Collectors that missed their configured polls: TenantExporterCollectorFailing.', f('sum(target_collector:tenant_exporter_collector_failing:bool{%(F)s})'), color='orange', links=[runbook('TenantExporterCollectorFailing')]),
      g.stat('Stale targets', 'Targets whose samples were dropped: TenantExporterCollectorStale.', f('sum(tenant_exporter_collector_stale{%(F)s,instance=~"$instance"})'), links=[runbook('TenantExporterCollectorStale')]),
      g.stat('Version', 'Versions running.', 'count by (version, revision) (tenant_exporter_build_info{job=~"$job",instance=~"$instance"})', bad=null) { options+: { textMode: 'name' } },
      g.timeseries('Polls since the last success', 'Per collector and target, in units of its own interval; TenantExporterCollectorFailing fires at %d.' % c.collectorMissedPolls, [
        g.target(f('target_collector:tenant_exporter_polls_since_success:ratio{%(F)s}'), legend='{{collector}} {{target}}'),
      ], links=[runbook('TenantExporterCollectorFailing')]),
      g.timeseries('Collection duration', 'Duration of the last collection.', [
        g.target(f('tenant_exporter_collector_duration_seconds{%(F)s,instance=~"$instance"}'), legend='{{collector}} {{target}}'),
      ], unit='s'),
      g.row('Upstream requests'),
      g.timeseries('Upstream requests by code', 'Per collector and HTTP status ("error": no response).', [
        g.target(f('sum by (collector, code) (rate(tenant_exporter_upstream_requests_total{%(F)s,instance=~"$instance"}[$__rate_interval]))'), legend='{{collector}} {{code}}'),
      ], unit='reqps', w=8),
      g.timeseries('Upstream request duration', 'p95 and p50 per collector.', [
        g.target(f('histogram_quantile(0.95, sum by (collector, le) (rate(tenant_exporter_upstream_request_duration_seconds_bucket{%(F)s,instance=~"$instance"}[$__rate_interval])))'), legend='{{collector}} p95'),
        g.target(f('histogram_quantile(0.5, sum by (collector, le) (rate(tenant_exporter_upstream_request_duration_seconds_bucket{%(F)s,instance=~"$instance"}[$__rate_interval])))'), 'B', legend='{{collector}} p50'),
      ], unit='s', w=8),
      g.timeseries('Failed collections', 'Failed collections per second (the counter starts at 0, so the first failure shows).', [
        g.target(f('sum by (collector, target) (rate(tenant_exporter_collection_failures_total{%(F)s,instance=~"$instance"}[$__rate_interval]))'), legend='{{collector}} {{target}}'),
      ], unit='ops', w=8),
      g.row('Robustness'),
      g.timeseries('Retries by reason', 'Upstream retries per second by collector and reason (429, 423, 503, other 5xx, timeout, network); every reason starts at 0.', [
        g.target(f('sum by (collector, reason) (rate(tenant_exporter_upstream_retries_total{%(F)s,instance=~"$instance"}[$__rate_interval]))'), legend='{{collector}} {{reason}}'),
      ], unit='ops', w=8),
      g.timeseries('Collections that panicked', 'Collections caught panicking (each also a failed collection; the job keeps its schedule).', [
        g.target(f('sum by (collector, target) (increase(tenant_exporter_collector_panics_total{%(F)s,instance=~"$instance"}[$__rate_interval]))'), legend='{{collector}} {{target}}'),
      ], w=8),
      g.timeseries('HTTP connections refused at the cap', 'Connections closed at once because --web.max-connections were open (slow or stuck clients).', [
        g.target('rate(tenant_exporter_http_connections_rejected_total{job=~"$job",instance=~"$instance"}[$__rate_interval])', legend='{{instance}}'),
      ], unit='ops', w=8),
      g.stat('Accounts locked', 'Exporter accounts the upstream reports locked (Commvault isAccountLocked): TenantExporterCredentialLocked.', f('sum(tenant_exporter_credential_locked{%(F)s,instance=~"$instance"})'), links=[runbook('TenantExporterCredentialLocked')]),
      g.row('Process'),
      g.timeseries('Resident memory', '', [g.target('process_resident_memory_bytes{job=~"$job",instance=~"$instance"}', legend='{{instance}}')], unit='bytes', w=8, h=7),
      g.timeseries('CPU', '', [g.target('rate(process_cpu_seconds_total{job=~"$job",instance=~"$instance"}[$__rate_interval])', legend='{{instance}}')], unit='percentunit', w=8, h=7),
      g.timeseries('Scrape duration', '', [g.target('scrape_duration_seconds{job=~"$job",instance=~"$instance"}', legend='{{instance}}')], unit='s', w=8, h=7),
    ]),
  },
}
