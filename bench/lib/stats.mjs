// Medians and summaries of samples.

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const SUMMARIZED = [
  'mibps',
  'p50us',
  'p99us',
  'serverCpuUsPerReq',
  'serverCpuPct',
  'clientCpuPct',
  'perConnKiB',
  'baselineMiB',
  'errors',
  'busyBefore',
];

/** Median, min and max of the sample values, and the median of each known detail field. */
export function summarize(samples) {
  const values = samples.map((s) => s.value).filter((x) => Number.isFinite(x));
  if (values.length === 0) return null;
  const out = { n: values.length, median: median(values), min: Math.min(...values), max: Math.max(...values) };
  for (const key of SUMMARIZED) {
    const m = median(samples.map((s) => s[key]));
    if (m !== null) out[key] = m;
  }
  return out;
}

/** Evaluates one goal of a workload against the summaries: ratio = loopwork ÷ anchor. */
export function evaluateGoal(goal, lw, anchor) {
  if (!lw?.summary || !anchor?.summary) return { ratio: null, met: null };
  const ratio = lw.summary.median / anchor.summary.median;
  if (!goal.op) return { ratio, met: null };
  const met = goal.op === '>=' ? ratio >= goal.ratio : ratio <= goal.ratio;
  const stretch = goal.stretch !== undefined && (goal.op === '>=' ? ratio >= goal.stretch : ratio <= goal.stretch);
  return { ratio, met, stretch };
}
