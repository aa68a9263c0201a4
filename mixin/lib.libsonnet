// Small helpers shared by the rules and the dashboards.
{
  // One line from a block of text: lets descriptions and queries be written over several
  // lines in the sources while the generated files carry what Prometheus and Grafana show.
  oneLine(s):: std.stripChars(std.join(' ', [std.stripChars(l, ' ') for l in std.split(s, '\n') if std.stripChars(l, ' ') != '']), ' '),

  // Duration strings of the config as seconds, for thresholds compared with timestamps.
  seconds(d)::
    local units = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
    local unit = std.substr(d, std.length(d) - 1, 1);
    std.parseInt(std.substr(d, 0, std.length(d) - 1)) * units[unit],
}
