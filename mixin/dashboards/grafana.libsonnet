// A few Grafana builders in plain jsonnet (no grafonnet: nothing is fetched at build time).
// Panels are laid out left to right in rows of 24 columns by `layout`.
local lib = import '../lib.libsonnet';

{
  ds:: { type: 'prometheus', uid: '${datasource}' },

  // A query; `instant` for stats and tables, a range query otherwise.
  target(expr, refId='A', legend='__auto', instant=false, table=false):: {
    datasource: $.ds,
    editorMode: 'code',
    expr: lib.oneLine(expr),
    refId: refId,
    legendFormat: legend,
    range: !instant,
    instant: instant,
    [if table then 'format']: 'table',
  },

  link(title, url):: { title: title, url: url, targetBlank: true },

  panel(type, title, description, targets, w, h, links=[]):: {
    type: type,
    title: title,
    description: description,
    datasource: $.ds,
    targets: [
      if std.type(t) == 'string' then $.target(t, refId=std.char(65 + i), instant=type == 'stat' || type == 'table' || type == 'bargauge', table=type == 'table') else t
      for i in std.range(0, std.length(targets) - 1)
      for t in [targets[i]]
    ],
    [if links != [] then 'links']: links,
    gridPos: { w: w, h: h },
  },

  // A count of something going wrong: green at 0, `color` from 1. `noValue` is not needed:
  // the queries sum 0/1 recording rules, so they return 0, not nothing.
  stat(title, description, expr, w=4, h=4, unit='none', color='red', links=[], bad=1)::
    $.panel('stat', title, description, [expr], w, h, links) {
      fieldConfig: {
        defaults: {
          unit: unit,
          color: { mode: 'thresholds' },
          thresholds: { mode: 'absolute', steps: [{ color: if bad == null then 'blue' else 'green', value: null }] + (if bad == null then [] else [{ color: color, value: bad }]) },
          mappings: [],
        },
        overrides: [],
      },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'background',
        graphMode: 'none',
        justifyMode: 'auto',
        orientation: 'auto',
        textMode: 'value',
        wideLayout: true,
        showPercentChange: false,
      },
    },

  timeseries(title, description, targets, w=12, h=8, unit='none', links=[], stack=false)::
    $.panel('timeseries', title, description, targets, w, h, links) {
      fieldConfig: {
        defaults: {
          unit: unit,
          custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: if stack then 30 else 0, showPoints: 'never', spanNulls: false, stacking: { mode: if stack then 'normal' else 'none', group: 'A' } },
          color: { mode: 'palette-classic' },
          mappings: [],
        },
        overrides: [],
      },
      options: { legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull'], showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
    },

  // A table of instant queries merged on their common labels. `columns` renames labels and
  // values ("Value #B"), `hide` drops columns, `sortBy` orders rows, `units` per column.
  table(title, description, targets, columns={}, hide=[], sortBy=null, desc=false, units={}, w=24, h=9, links=[])::
    $.panel('table', title, description, targets, w, h, links) {
      transformations: [
        { id: 'merge', options: {} },
        { id: 'organize', options: { excludeByName: { [c]: true for c in ['Time'] + hide }, renameByName: columns, indexByName: {} } },
      ] + (if sortBy == null then [] else [{ id: 'sortBy', options: { fields: {}, sort: [{ field: sortBy, desc: desc }] } }]),
      fieldConfig: {
        defaults: {
          custom: { align: 'auto', cellOptions: { type: 'auto' }, filterable: true },
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          mappings: [],
        },
        overrides: [
          { matcher: { id: 'byName', options: c }, properties: [{ id: 'unit', value: units[c] }] }
          for c in std.objectFields(units)
        ],
      },
      options: { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], fields: '' } },
    },

  // Grafana's alert list: the rules of the data source, firing and pending, of this job.
  alertList(title, description, job, w=24, h=8):: {
    type: 'alertlist',
    title: title,
    description: description,
    datasource: $.ds,
    gridPos: { w: w, h: h },
    options: {
      viewMode: 'list',
      groupMode: 'default',
      groupBy: [],
      maxItems: 50,
      sortOrder: 3,
      dashboardAlerts: false,
      alertName: '',
      alertInstanceLabelFilter: '{job=~"%s"}' % job,
      datasource: '${datasource}',
      stateFilter: { firing: true, pending: true, noData: false, normal: false, 'error': true },
      folder: null,
    },
  },

  row(title):: { type: 'row', title: title, collapsed: false, panels: [], gridPos: { w: 24, h: 1 } },

  // Positions and ids: each panel goes right of the previous one, or starts a new line when it
  // does not fit; a row always starts a new line.
  layout(panels)::
    local step(acc, p) =
      local w = p.gridPos.w;
      local h = p.gridPos.h;
      local newLine = p.type == 'row' || acc.x + w > 24;
      local x = if newLine then 0 else acc.x;
      local y = if newLine then acc.y + acc.lineH else acc.y;
      {
        x: x + w,
        y: y,
        lineH: if newLine then h else std.max(acc.lineH, h),
        out: acc.out + [p { id: std.length(acc.out) + 1, gridPos: { x: x, y: y, w: w, h: h } }],
      };
    std.foldl(step, panels, { x: 0, y: 0, lineH: 0, out: [] }).out,

  variable(name, label, query, multi=true, hide=0):: {
    name: name,
    label: label,
    type: 'query',
    datasource: $.ds,
    definition: query,
    query: { qryType: 1, query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    regex: '',
    sort: 1,
    multi: multi,
    includeAll: multi,
    current: {},
    options: [],
    hide: hide,
    [if multi then 'allValue']: '.*',
  },

  dashboard(c, key, description, tags, variables, panels):: {
    uid: c.dashboards[key].uid,
    title: c.dashboards[key].title,
    description: description,
    tags: c.dashboardTags + tags,
    editable: true,
    graphTooltip: 1,
    timezone: '',
    refresh: c.dashboardRefresh,
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    fiscalYearStartMonth: 0,
    liveNow: false,
    schemaVersion: 41,
    version: 1,
    annotations: { list: [{ builtIn: 1, datasource: { type: 'grafana', uid: '-- Grafana --' }, enable: true, hide: true, iconColor: 'rgba(0, 211, 255, 1)', name: 'Annotations & Alerts', type: 'dashboard' }] },
    links: [{ title: 'tenant-exporter dashboards', type: 'dashboards', tags: c.dashboardTags, asDropdown: true, includeVars: true, keepTime: true, icon: 'external link', targetBlank: false, tooltip: '', url: '' }],
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, includeAll: false, multi: false, options: [], refresh: 1, regex: '', skipUrlSync: false },
        $.variable('job', 'Job', 'label_values(tenant_exporter_build_info{%s}, job)' % c.selector, multi=false),
      ] + variables,
    },
    panels: $.layout(panels),
  },
}
