// The tenant-exporter monitoring mixin: `_config` (config.libsonnet), the Prometheus rules
// (rules.libsonnet) and the Grafana dashboards (dashboards/). Import it and override
// `_config` to adapt it, e.g.
//   (import 'mixin.libsonnet') + { _config+:: { selector: 'job="tenant-exporter-prod"' } }
(import 'config.libsonnet')
+ (import 'rules.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
