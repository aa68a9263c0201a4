//! Structural errors, all of them: serde stops at the first unknown key or wrong type, so the
//! config is deserialized again and again, each time with the offending entry neutralised in
//! the text (blanked or set to `~`, keeping every other byte where it was so later positions
//! stay right), until it deserializes. Every error met on the way is reported once, in words
//! that name the key.

use std::ops::Range;

use serde::de::DeserializeOwned;
use serde_saphyr::granit_parser::{Event, Parser, StructureStyle};

use super::Problem;

/// Enough for any real config; stops a pathological file from looping long.
const MAX_ROUNDS: usize = 200;

/// A node of the YAML tree with its byte range in the text.
struct Node {
    range: Range<usize>,
    kind: Kind,
}

enum Kind {
    Scalar(String),
    Seq(Vec<Node>, bool),
    Map(Vec<(Node, Node)>, bool),
    Other,
}

/// Builds the tree of the first document; `None` when the text is not well-formed YAML
/// (serde-saphyr then reports the syntax error itself).
fn tree(text: &str) -> Option<Node> {
    let mut parser = Parser::new_from_str(text);
    // Open collections: start offset, flow style, children.
    enum Open {
        Seq(usize, bool, Vec<Node>),
        Map(usize, bool, Vec<Node>),
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut root = None;
    let push = |stack: &mut Vec<Open>, root: &mut Option<Node>, node: Node| match stack.last_mut() {
        Some(Open::Seq(_, _, c)) | Some(Open::Map(_, _, c)) => c.push(node),
        None => *root = Some(node),
    };
    while let Some(event) = parser.next_event() {
        let (event, span) = event.ok()?;
        let range = span.byte_range()?;
        match event {
            Event::Scalar(value, ..) => push(
                &mut stack,
                &mut root,
                Node {
                    range,
                    kind: Kind::Scalar(value.into_owned()),
                },
            ),
            Event::Alias(_) => push(
                &mut stack,
                &mut root,
                Node {
                    range,
                    kind: Kind::Other,
                },
            ),
            Event::SequenceStart(style, ..) => stack.push(Open::Seq(
                range.start,
                style == StructureStyle::Flow,
                vec![],
            )),
            Event::MappingStart(style, ..) => stack.push(Open::Map(
                range.start,
                style == StructureStyle::Flow,
                vec![],
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                let (start, flow, children, is_map) = match stack.pop()? {
                    Open::Seq(s, f, c) => (s, f, c, false),
                    Open::Map(s, f, c) => (s, f, c, true),
                };
                // A block collection ends with its last child; its end event sits wherever
                // the next token is.
                let end = if flow {
                    range.end
                } else {
                    children.last().map_or(start, |c| c.range.end)
                };
                let kind = if is_map {
                    let mut pairs = Vec::new();
                    let mut it = children.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Kind::Map(pairs, flow)
                } else {
                    Kind::Seq(children, flow)
                };
                push(
                    &mut stack,
                    &mut root,
                    Node {
                        range: start..end.max(start),
                        kind,
                    },
                );
            }
            Event::DocumentEnd => break,
            _ => {}
        }
    }
    root
}

/// What to do about an error found at one offset.
struct Hit {
    /// Dotted path of the key or item, e.g. `webex[0].broadworks_enterprises.page_size`.
    path: Vec<String>,
    /// The value's range, when the error is about a value that can be set to `~`.
    value: Option<Range<usize>>,
    /// The whole entry (key and value, or `- item`), to blank.
    entry: Range<usize>,
    /// Inside a flow collection, where a blanked entry leaves a comma to remove.
    flow: bool,
    /// A sequence item, whose `- ` goes with it.
    item: bool,
}

/// Finds the entry an error at `offset` is about. `key` asks for the innermost key starting
/// there (unknown keys); otherwise the outermost value or item starting there is meant.
fn find(node: &Node, offset: usize, key: Option<&str>, path: &mut Vec<String>) -> Option<Hit> {
    match &node.kind {
        Kind::Seq(items, flow) => {
            for (i, item) in items.iter().enumerate() {
                if !(item.range.start..item.range.end.max(item.range.start + 1)).contains(&offset) {
                    continue;
                }
                path.push(format!("[{i}]"));
                if key.is_none() && item.range.start == offset {
                    return Some(Hit {
                        path: path.clone(),
                        value: None,
                        entry: item.range.clone(),
                        flow: *flow,
                        item: true,
                    });
                }
                if let Some(hit) = find(item, offset, key, path) {
                    return Some(hit);
                }
                path.pop();
            }
            None
        }
        Kind::Map(pairs, flow) => {
            for (k, v) in pairs {
                let entry = k.range.start..v.range.end.max(k.range.end);
                let name = match &k.kind {
                    Kind::Scalar(s) => s.clone(),
                    _ => "?".into(),
                };
                path.push(name.clone());
                if let Some(wanted) = key {
                    if k.range.start == offset && name == wanted {
                        return Some(Hit {
                            path: path.clone(),
                            value: None,
                            entry,
                            flow: *flow,
                            item: false,
                        });
                    }
                } else if v.range.start == offset && !v.range.is_empty() {
                    return Some(Hit {
                        path: path.clone(),
                        value: Some(v.range.clone()),
                        entry,
                        flow: *flow,
                        item: false,
                    });
                }
                if v.range.contains(&offset) {
                    if let Some(hit) = find(v, offset, key, path) {
                        return Some(hit);
                    }
                }
                path.pop();
            }
            None
        }
        _ => None,
    }
}

/// The entry or item whose value is the innermost mapping around `offset`.
fn owner_of_map(node: &Node, offset: usize, path: &mut Vec<String>) -> Option<Hit> {
    let children: Vec<(String, &Node, Range<usize>, bool, bool)> = match &node.kind {
        Kind::Seq(items, flow) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("[{i}]"), n, n.range.clone(), *flow, true))
            .collect(),
        Kind::Map(pairs, flow) => pairs
            .iter()
            .map(|(k, v)| {
                let name = match &k.kind {
                    Kind::Scalar(s) => s.clone(),
                    _ => "?".into(),
                };
                (
                    name,
                    v,
                    k.range.start..v.range.end.max(k.range.end),
                    *flow,
                    false,
                )
            })
            .collect(),
        _ => return None,
    };
    for (name, child, entry, flow, item) in children {
        if !child.range.contains(&offset) {
            continue;
        }
        path.push(name);
        if let Some(inner) = owner_of_map(child, offset, path) {
            return Some(inner);
        }
        if matches!(child.kind, Kind::Map(..)) {
            return Some(Hit {
                path: path.clone(),
                value: None,
                entry,
                flow,
                item,
            });
        }
        path.pop();
    }
    None
}

/// Replaces `range` with spaces (and `~` first when `null`), keeping line breaks so every
/// other position stays where it was.
fn overwrite(text: &mut [u8], range: Range<usize>, null: bool) {
    for (i, b) in text[range.clone()].iter_mut().enumerate() {
        if *b != b'\n' && *b != b'\r' {
            *b = if null && i == 0 { b'~' } else { b' ' };
        }
    }
}

/// Blanks a whole entry: the `- ` before a block sequence item, and in flow style the comma
/// that separated it from a neighbour.
fn blank_entry(text: &mut [u8], mut range: Range<usize>, flow: bool, item: bool) {
    let before = text[..range.start].iter().rposition(|b| *b != b' ');
    if let Some(dash) = before.filter(|&i| item && !flow && text[i] == b'-') {
        range.start = dash;
    }
    overwrite(text, range.clone(), false);
    if flow {
        let after = text[range.end..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map(|i| range.end + i);
        match after {
            Some(i) if text[i] == b',' => overwrite(text, i..i + 1, false),
            _ => {
                let before = text[..range.start]
                    .iter()
                    .rposition(|b| !b.is_ascii_whitespace());
                if let Some(i) = before.filter(|&i| text[i] == b',') {
                    overwrite(text, i..i + 1, false);
                }
            }
        }
    }
}

/// Deserializes `text` into `T`, collecting every structural problem. Returns the value of the
/// text with the bad entries neutralised, when one could be reached.
pub(super) fn deserialize_all<T: DeserializeOwned>(text: &str) -> (Option<T>, Vec<Problem>) {
    let mut problems = Vec::new();
    let tree = tree(text);
    let mut current = text.as_bytes().to_vec();
    // Entries already set to `~`, and keys given wrongly, so the errors that follow from
    // fixing them up (`missing field`) are not reported twice.
    let mut nulled: Vec<usize> = Vec::new();
    let mut dropped_keys: Vec<Vec<String>> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let Ok(s) = std::str::from_utf8(&current) else {
            break;
        };
        let err = match serde_saphyr::from_str::<T>(s) {
            Ok(v) => return (Some(v), problems),
            Err(e) => e,
        };
        let mut problem = super::yaml_problem(&err);
        let offset = err
            .location()
            .and_then(|l| l.span().byte_offset())
            .map(|o| o as usize);
        let (Some(tree), Some(offset)) = (&tree, offset) else {
            problems.push(problem);
            break;
        };
        let message = problem.message.clone();
        // Errors about a key (unknown, or given twice) point at the key itself.
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split_once('`'))
            .map(|(k, _)| k.to_string())
            .or_else(|| {
                message
                    .strip_prefix("duplicate mapping key: ")
                    .and_then(|m| m.split(',').next())
                    .map(|k| k.trim().to_string())
            });
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split_once('`'))
            .map(|(k, _)| k.to_string());
        // A missing key is reported where the mapping now starts, which is not where it
        // started if its first entries were blanked.
        let hit = match missing {
            Some(_) => owner_of_map(tree, offset, &mut Vec::new()),
            None => find(tree, offset, unknown.as_deref(), &mut Vec::new()),
        };
        let Some(hit) = hit else {
            problem.message = describe(&[], &message);
            problems.push(problem);
            break;
        };
        let follows_from_earlier = nulled.contains(&offset)
            || missing.as_ref().is_some_and(|m| {
                let mut p = hit.path.clone();
                p.push(m.clone());
                dropped_keys.contains(&p)
            });
        if !follows_from_earlier {
            problem.message = describe(&hit.path, &message);
            problems.push(problem);
        }
        match (&hit.value, unknown.is_some()) {
            (Some(v), false) if !nulled.contains(&v.start) => {
                nulled.push(v.start);
                dropped_keys.push(hit.path.clone());
                overwrite(&mut current, v.clone(), true);
            }
            _ => blank_entry(&mut current, hit.entry.clone(), hit.flow, hit.item),
        }
    }
    (None, problems)
}

/// The path as the rest of the config checks name fields: relative to the target for the
/// target lists (`broadworks_enterprises.page_size`), whole for `global`.
fn field(path: &[String]) -> String {
    let rel = match path {
        [_, index, rest @ ..] if index.starts_with('[') && !rest.is_empty() => rest,
        _ => path,
    };
    let mut out = String::new();
    for p in rel {
        if !out.is_empty() && !p.starts_with('[') {
            out.push('.');
        }
        out.push_str(p);
    }
    out
}

/// serde's wording, rephrased for someone editing the file.
fn describe(path: &[String], message: &str) -> String {
    let f = field(path);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = rest
            .split_once("expected ")
            .map(|(_, l)| l)
            .unwrap_or("")
            .trim_start_matches("one of ")
            .split([',', ' '])
            .map(|k| k.trim().trim_matches('`'))
            .filter(|k| !k.is_empty() && *k != "or")
            .collect();
        let parent = field(&path[..path.len().saturating_sub(1)]);
        let place = if parent.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in {parent}")
        };
        return match closest(key, &known) {
            Some(k) => format!("unknown key `{key}` {place}; did you mean `{k}`?"),
            None if known.is_empty() => format!("unknown key `{key}` {place}"),
            None => format!(
                "unknown key `{key}` {place}; expected one of {}",
                known.join(", ")
            ),
        };
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        return format!("`{key}` is given twice here; keep one");
    }
    if message.starts_with("multiple YAML documents") {
        return "the config is one YAML document: remove the second `---` and what follows, or merge it".into();
    }
    if f.is_empty() && message.starts_with("expected mapping") {
        return "the config must be a mapping of sections: global, webex, voss, commvault".into();
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        return format!("{f}: {key} is required");
    }
    let what = if message.starts_with("invalid u") || message.starts_with("invalid i") {
        "expected a whole number"
    } else if message.starts_with("invalid boolean") {
        "expected true or false"
    } else if message.contains("untagged enum RawOrganizations")
        || message.contains("expected `all` or a list of organization ids")
    {
        "expected `all` or a list of organization ids such as [12, 34]"
    } else if message.starts_with("expected string") {
        "expected a single value, not a list or a mapping"
    } else if message.starts_with("expected sequence") {
        "expected a list (lines starting with `- `)"
    } else if message.starts_with("expected mapping") {
        "expected keys and values (`key: value`)"
    } else {
        message
    };
    if f.is_empty() {
        what.to_string()
    } else {
        format!("{f}: {what}")
    }
}

/// The known key nearest to a misspelt one, when it is near enough to be meant.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_keys_are_suggested() {
        assert_eq!(edit_distance("pasword_file", "password_file"), 1);
        assert_eq!(
            closest("acess_token", &["access_token", "base_url"]),
            Some("access_token")
        );
        assert_eq!(closest("colour", &["name", "base_url"]), None);
    }

    #[test]
    fn blanking_keeps_positions_and_flow_syntax() {
        let mut t = b"a: {x: 1, y: 2}\nb:\n  - 1\n  - 2\n".to_vec();
        blank_entry(&mut t, 4..8, true, false);
        assert_eq!(
            std::str::from_utf8(&t).unwrap(),
            "a: {      y: 2}\nb:\n  - 1\n  - 2\n"
        );
        blank_entry(&mut t, 29..30, false, true);
        assert_eq!(
            std::str::from_utf8(&t).unwrap(),
            "a: {      y: 2}\nb:\n  - 1\n     \n"
        );
    }
}
