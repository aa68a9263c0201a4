// Renders the mixin into the files this repository ships: `jsonnet -S -m OUT build.jsonnet`
// writes OUT/alerts/*.yml and OUT/dashboards/*.json (.ci/mixin.sh does it and compares).
// `--tla-code config='{...}'` overrides _config (the check that nothing bypasses it uses it).
function(config={})
local mixin = (import 'mixin.libsonnet') + { _config+:: config };

local header(what) =
  '# Generated from mixin/%s by .ci/mixin.sh: do not edit; edit the mixin and regenerate.\n' % what;

{
  ['alerts/%s.yml' % name]:
    header('rules.libsonnet')
    + std.manifestYamlDoc(mixin.ruleFiles[name], indent_array_in_object=true, quote_keys=false)
    + '\n'
  for name in std.objectFields(mixin.ruleFiles)
} + {
  ['dashboards/' + mixin._config.dashboards[name].file]: std.manifestJsonEx(mixin.grafanaDashboards[name], '  ') + '\n'
  for name in std.objectFields(mixin.grafanaDashboards)
}
