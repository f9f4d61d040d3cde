/**
 * The metric and label names PromQL expressions refer to, checked against what a gateway
 * exports. A scanner, not a parser: it removes what cannot be a name (strings, ranges,
 * numbers, Grafana variables), collects label names from matchers and grouping clauses, and
 * takes every remaining identifier not followed by `(` (a function) and not a keyword as a
 * metric name. Prometheus itself (promtool, a real server) checks the syntax; this checks
 * the names, which no parser can. (Prometheus' own Lezer grammar, @prometheus-io/lezer-promql,
 * would replace the scanner if the workspace took the dependency.)
 */

export interface PromqlRefs {
  metrics: string[];
  labels: string[];
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'atan2', 'inf', 'nan']);
/** Series Prometheus makes itself for every target. */
const SYNTHETIC_SERIES = new Set(['up']);
/** Labels Prometheus puts on every scraped series. */
const TARGET_LABELS = ['job', 'instance'];

export function promqlRefs(expr: string): PromqlRefs {
  const labels = new Set<string>();
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\{\w+(?::\w+)?\}|\$\w+/g, '0');
  s = s.replace(/\{([^}]*)\}/g, (_m, body: string) => {
    for (const [, name] of body.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.add(name);
    return ' ';
  });
  s = s.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_m, list: string) => {
    for (const name of list.split(',').map((l) => l.trim())) if (name) labels.add(name);
    return ' ';
  });
  s = s.replace(/\b(?:\d+(?:ms|s|m|h|d|w|y))+\b/g, ' ').replace(/(?:\b\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\b/g, ' ');
  const metrics = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const rest = s.slice(m.index! + m[0].length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    metrics.add(m[0]);
  }
  return { metrics: [...metrics], labels: [...labels] };
}

/** A Grafana variable query: `label_values(selector, label)`, `label_values(label)` or PromQL. */
export function variableQueryRefs(query: string): PromqlRefs {
  const m = /^\s*label_values\((?:(.*),)?\s*([A-Za-z_]\w*)\s*\)\s*$/.exec(query);
  if (!m) return promqlRefs(query);
  const inner = m[1] ? promqlRefs(m[1]) : { metrics: [], labels: [] };
  return { metrics: inner.metrics, labels: [...inner.labels, m[2]] };
}

/** Every series name a gateway's /metrics offers, and the labels each carries. */
export interface MetricCatalog {
  /** Series name (a histogram `foo` gives foo_bucket, foo_sum, foo_count) -> label names. */
  series: Map<string, Set<string>>;
}

/**
 * Builds the catalog from the exposition text (`# TYPE` lines and samples) and the label
 * names each family declares (families with labels but no sample yet show none in the text).
 */
export function catalogOf(text: string, declaredLabels: Map<string, string[]>): MetricCatalog {
  const series = new Map<string, Set<string>>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const own = [...(declaredLabels.get(name) ?? [])];
    // A gateway label called `instance` collides with the target's and is renamed on scrape.
    const scraped = new Set([...own.map((l) => (l === 'instance' ? 'exported_instance' : l)), ...TARGET_LABELS]);
    if (type === 'histogram') {
      series.set(`${name}_bucket`, new Set([...scraped, 'le']));
      series.set(`${name}_sum`, scraped);
      series.set(`${name}_count`, scraped);
    } else if (type === 'summary') {
      series.set(name, new Set([...scraped, 'quantile']));
      series.set(`${name}_sum`, scraped);
      series.set(`${name}_count`, scraped);
    } else {
      series.set(name, scraped);
    }
  }
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)\{([^}]*)\}/.exec(line);
    const labels = m && series.get(m[1]);
    if (!labels) continue;
    for (const [, name] of m[2].matchAll(/([A-Za-z_]\w*)="/g)) labels.add(name === 'instance' ? 'exported_instance' : name);
  }
  for (const name of SYNTHETIC_SERIES) series.set(name, new Set(TARGET_LABELS));
  return { series };
}

/** What an expression names that the catalog lacks: "metric foo", "label bar (on x, y)". */
export function unknownNames(refs: PromqlRefs, catalog: MetricCatalog): string[] {
  const problems: string[] = [];
  const known = refs.metrics.filter((m) => catalog.series.has(m));
  for (const m of refs.metrics) if (!catalog.series.has(m)) problems.push(`metric ${m}`);
  const allowed = new Set<string>(TARGET_LABELS);
  for (const m of known) for (const l of catalog.series.get(m)!) allowed.add(l);
  for (const l of refs.labels) if (!allowed.has(l)) problems.push(`label ${l} (on ${known.join(', ') || 'no known metric'})`);
  return problems;
}
