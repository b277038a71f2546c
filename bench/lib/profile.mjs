// CPU profiles of the loopwork side of a workload (`node bench/run.mjs <name> --profile`): one extra sample of
// the loopwork system with `node --cpu-prof`, summarized as where the main thread's time goes.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

/** `argv` with `--cpu-prof` flags added to its Node executable (after a `taskset` or `sh -c` prefix, if any). */
export function withCpuProf(argv, dir) {
  const i = argv.indexOf(process.execPath);
  if (i < 0) throw new Error(`not a Node command: ${argv.join(' ')}`);
  return [...argv.slice(0, i + 1), '--cpu-prof', `--cpu-prof-dir=${dir}`, ...argv.slice(i + 1)];
}

/** What a profile node's self time is spent on. */
function categoryOf(frame) {
  const { functionName: name, url } = frame;
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle (waiting for I/O)';
  if (name === '(program)') return 'native (libuv, syscalls, V8 runtime)';
  if (url.includes('/packages/')) return 'loopwork';
  if (url.startsWith('node:') || url === '') return 'Node internals';
  if (url.includes('/node_modules/')) return 'dependencies';
  return 'the benchmark script';
}

/**
 * Self time per function and per category of the biggest profile in `dir` (the main thread's: worker and
 * loader threads write smaller ones).
 */
export function summarizeProfiles(dir, top = 12) {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size);
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  const profile = JSON.parse(readFileSync(files[0], 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map();
  const byCategory = new Map();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = nodes.get(profile.samples[i]).callFrame;
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const where = frame.url ? `${basename(frame.url)}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + dt);
    const cat = categoryOf(frame);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + dt);
  }
  const share = ([name, us]) => ({ name, pct: total > 0 ? (100 * us) / total : 0 });
  return {
    file: files[0],
    seconds: total / 1e6,
    categories: [...byCategory].sort((a, b) => b[1] - a[1]).map(share),
    functions: [...byFunction]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(share),
  };
}

/** A Markdown section for one workload's profile. */
export function profileMarkdown(workload, summary, command) {
  const lines = [
    `### ${workload.id}`,
    '',
    `${workload.title}. ${summary.seconds.toFixed(1)} s of the server's main thread, sampled by \`node --cpu-prof\`:`,
    `\`${command.join(' ')}\``,
    '',
    '| where the time goes | share |',
    '|---|---|',
    ...summary.categories.map((c) => `| ${c.name} | ${c.pct.toFixed(1)} % |`),
    '',
    '| function (self time) | share |',
    '|---|---|',
    ...summary.functions.map((f) => `| \`${f.name}\` | ${f.pct.toFixed(1)} % |`),
    '',
  ];
  return lines.join('\n');
}
