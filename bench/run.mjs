#!/usr/bin/env node
// The benchmark harness: runs the workloads of bench/<group>/workloads.mjs, every registered system side by side
// in one run, interleaved (A B C, B C A, …) for several rounds, and reports medians, ratios and goals.
// Usage: USAGE below (`--help` prints it); `--report` only regenerates RESULTS.md and the chart from
// bench/results/*.json.
// Exits 1 when a system failed (its script crashed or printed no result), in smoke runs only: noisy figures and
// unmet goals never fail a run, a missing anchor is announced, a feature loopwork does not have yet is reported.
// See bench/README.md.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureRequirements, machineInfo, pinning, root } from './lib/env.mjs';
import { profileMarkdown, summarizeProfiles, withCpuProf } from './lib/profile.mjs';
import { SystemFailure, machineBusyPct, shellLine } from './lib/proc.mjs';
import { formatValue, profileFile, regenerate, rowsOf, writeResults } from './lib/report.mjs';
import { summarize } from './lib/stats.mjs';

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const USAGE = `usage: node bench/run.mjs [name…] [--smoke] [--rounds N] [--duration S] [--full] [--src] [--list]
                        [--no-install] [--quiet-wait S] [--no-save] [--profile]
       node bench/run.mjs --report
A name is a group (core), a workload (net/tcp-protocol-1KiB-c10) or a prefix (net/tcp-protocol). See bench/README.md.`;

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      smoke: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      full: { type: 'boolean', default: false },
      src: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      report: { type: 'boolean', default: false },
      'no-install': { type: 'boolean', default: false },
      'no-save': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string' },
      profile: { type: 'boolean', default: false },
    },
  });
} catch (err) {
  console.error(`bench: ${err.message}\n${USAGE}`);
  process.exit(2);
}
const { values: opt, positionals: names } = parsed;
if (opt.help) {
  console.log(USAGE);
  process.exit(0);
}
for (const key of ['rounds', 'duration', 'quiet-wait']) {
  if (opt[key] !== undefined && !(Number(opt[key]) >= 0 && Number.isFinite(Number(opt[key])))) {
    console.error(`bench: --${key} must be a number, got ${JSON.stringify(opt[key])}\n${USAGE}`);
    process.exit(2);
  }
}

const ctx = {
  root,
  smoke: opt.smoke,
  full: opt.full,
  dist: !opt.src,
  rounds: opt.rounds ? Number(opt.rounds) : opt.smoke ? 1 : 5,
  duration: opt.duration ? Number(opt.duration) : undefined,
  quietWait: opt['quiet-wait'] ? Number(opt['quiet-wait']) : opt.smoke ? 0 : 5,
};

const GROUP_ORDER = ['core', 'net', 'mem', 'http', 'tls'];
const groupRank = (name) => (GROUP_ORDER.includes(name) ? GROUP_ORDER.indexOf(name) : GROUP_ORDER.length);

async function loadWorkloads() {
  const all = [];
  const groups = readdirSync(benchDir, { withFileTypes: true }).sort((a, b) => groupRank(a.name) - groupRank(b.name));
  for (const group of groups) {
    if (!group.isDirectory() || ['lib', 'results', 'node_modules'].includes(group.name)) continue;
    let mod;
    try {
      mod = await import(new URL(`./${group.name}/workloads.mjs`, import.meta.url).href);
    } catch (e) {
      if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(`${group.name}/workloads.mjs`)) continue;
      throw e;
    }
    all.push(...mod.default(ctx));
  }
  return all;
}

/** Smoke runs take the smoke tier, normal runs everything but the `full` tier; an exact id always runs. */
function select(all) {
  const inTier = (w) => (ctx.smoke ? w.smoke : ctx.full || !w.full);
  if (names.length === 0) return all.filter(inTier);
  return all.filter((w) =>
    names.some((n) => w.id === n || (inTier(w) && (w.id.startsWith(`${n}/`) || w.id.startsWith(n)))),
  );
}

const pad = (s, n) => String(s).padEnd(n);

function sampleLine(w, s) {
  const parts = [formatValue(s.value, w.metric.unit).padStart(16)];
  if (s.p50us !== undefined) parts.push(`p50 ${Math.round(s.p50us)} µs, p99 ${Math.round(s.p99us)} µs`);
  if (s.serverCpuUsPerReq != null)
    parts.push(
      `server ${s.serverCpuUsPerReq.toFixed(2)} CPU-µs/${w.metric.per ?? 'req'} (${s.serverCpuPct.toFixed(0)} %)`,
    );
  if (s.clientCpuPct != null)
    parts.push(`client ${s.clientCpuPct.toFixed(0)} %${s.clientCpuPct >= 90 ? ' SATURATED' : ''}`);
  if (s.perConnKiB !== undefined) parts.push(`${s.perConnKiB.toFixed(2)} KiB/conn over ${s.connections} connections`);
  return parts.join('  ');
}

/** Waits up to --quiet-wait seconds (default 5, smoke 0) for the machine to be under 30 % busy. */
async function quietMoment() {
  const deadline = Date.now() + ctx.quietWait * 1000;
  let busy = await machineBusyPct(200);
  while (busy >= 30 && Date.now() < deadline) busy = await machineBusyPct(500);
  return busy;
}

/**
 * One sample. A smoke run (one round) retries a failed sample once, so that one unlucky moment on a shared
 * machine does not fail CI; a second failure is the script's.
 */
async function sampleOnce(w, system, label) {
  try {
    return await w.sample(system, ctx);
  } catch (e) {
    if (!ctx.smoke || (e instanceof SystemFailure && e.status !== 'failed')) throw e;
    console.log(`${label}failed once, retrying: ${(e?.message ?? String(e)).split('\n')[0]}`);
    return w.sample(system, ctx);
  }
}

async function runWorkload(w, env) {
  console.log(`\n== ${w.id}: ${w.title}`);
  const states = w.systems.map((system) => ({ system, samples: [], errors: [], failure: null }));
  for (const st of states) {
    const absent = (st.system.requires ?? []).filter((r) => !env.have.has(r));
    if (absent.length > 0) {
      const why = absent.map((r) => `${r} (${env.missing.get(r)})`).join('; ');
      st.failure = { status: 'missing', message: `ANCHOR MISSING: ${why}` };
      console.log(`   !! ${pad(st.system.label, 32)} MISSING: ${why}`);
    }
  }
  for (let round = 0; round < ctx.rounds; round++) {
    const order = states.map((_, i) => states[(i + round) % states.length]);
    for (const st of order) {
      if (st.failure) continue;
      const label = `   [${round + 1}/${ctx.rounds}] ${pad(st.system.label, 32)}`;
      // Other processes on this shared machine skew a sample: wait (a while) for a quiet moment, and record how
      // busy the machine was just before the sample.
      const busyBefore = await quietMoment();
      const busy = busyBefore >= 25 ? `  (machine ${busyBefore.toFixed(0)} % busy before the sample)` : '';
      try {
        const s = await sampleOnce(w, st.system, label);
        st.samples.push({
          round: round + 1,
          ...s,
          busyBefore,
          loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ')[0],
          command: s.command && shellLine(s.command),
          clientCommand: s.clientCommand && shellLine(s.clientCommand),
        });
        console.log(`${label}${sampleLine(w, s)}${busy}`);
      } catch (e) {
        const status = e instanceof SystemFailure ? e.status : 'failed';
        const message = (e?.message ?? String(e)).split('\n')[0].replace(/^Error: /, '');
        // Dropped for this workload: a missing or unavailable system at once, a failing one when it fails a
        // second time without ever producing a sample (once may be this noisy machine); else the error is noted.
        if (status !== 'failed' || (st.samples.length === 0 && st.errors.length > 0)) st.failure = { status, message };
        else st.errors.push({ round: round + 1, status, message });
        console.log(`${label}${status === 'unavailable' ? 'not available yet' : status.toUpperCase()}: ${message}`);
      }
    }
  }
  for (const st of states) {
    if (!st.failure && st.samples.length === 0 && st.errors.length > 0) st.failure = st.errors.pop();
  }
  const systems = states.map(({ system, samples, errors, failure }) => ({
    id: system.id,
    label: system.label,
    role: system.role,
    status: failure ? failure.status : 'ok',
    error: failure?.message,
    errors: errors.length ? errors : undefined,
    summary: summarize(samples),
    samples,
  }));
  const result = {
    id: w.id,
    title: w.title,
    metric: w.metric,
    params: w.params,
    goals: w.goals ?? [],
    compare: w.compare ?? [],
    systems,
  };
  for (const s of systems) {
    if (!s.summary) continue;
    const { median, min, max, n } = s.summary;
    const unit = w.metric.unit;
    console.log(
      `   median ${pad(s.label, 32)}${formatValue(median, unit).padStart(16)}  (${formatValue(min, unit)} – ${formatValue(max, unit)}, n=${n})`,
    );
  }
  return result;
}

function printTable(entries) {
  const rows = entries.flatMap((e) => rowsOf(e.w, e.run));
  const table = rows.map((r) => {
    const unit = r.w.metric.unit;
    const lw = r.lw?.summary
      ? formatValue(r.lw.summary.median, unit)
      : `${r.lw?.status === 'unavailable' ? 'not available yet' : (r.lw?.status ?? 'failed')}: ${r.lw?.error ?? ''}`;
    const an = r.anchor?.summary
      ? formatValue(r.anchor.summary.median, unit)
      : (r.anchor?.status ?? 'missing').toUpperCase();
    const met = !r.goal.op ? '' : r.met === null ? 'not measured' : r.met ? 'MET' : 'not met';
    return [
      `${r.w.id}${r.run.smoke ? ' (smoke)' : ''}`,
      lw.length > 44 ? `${lw.slice(0, 43)}…` : lw,
      `${r.anchor?.label ?? r.goal.vs} ${an}`,
      r.ratio === null ? '—' : `${r.ratio.toFixed(2)}×`,
      r.goal.text,
      met,
    ];
  });
  const header = ['workload', 'loopwork', 'anchor', 'ratio', 'goal', 'met?'];
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(`\n${line(header)}\n${widths.map((n) => '-'.repeat(n)).join('  ')}`);
  for (const r of table) console.log(line(r));
}

const all = await loadWorkloads();
if (opt.list) {
  for (const w of all) console.log(`${pad(w.id, 36)} ${w.smoke ? 'smoke' : w.full ? 'full ' : '     '}  ${w.title}`);
  process.exit(0);
}
if (opt.report) {
  const entries = regenerate(
    benchDir,
    all.map((w) => w.id),
  );
  printTable(entries);
  console.log('\nbench: regenerated bench/RESULTS.md and bench/results/chart.svg from bench/results/*.json');
  process.exit(0);
}
const selected = select(all);
if (selected.length === 0) {
  console.error(`bench: nothing matches ${names.join(' ')} (try --list)`);
  process.exit(2);
}
const env = ensureRequirements({ install: !opt['no-install'] });
const pin = pinning(env.have);
ctx.pin = pin;
const machine = machineInfo();
console.log(
  `bench: ${selected.length} workload(s), ${ctx.rounds} round(s)${ctx.smoke ? ' (smoke)' : ''}; loopwork from ${ctx.dist ? 'dist/ (compiled)' : 'src/ (tsx)'}\n` +
    `bench: ${machine.nproc} × ${machine.cpuModel}, Node ${machine.node}, Python ${machine.python ?? 'MISSING'}, uvloop ${machine.uvloop ?? 'MISSING'}; ${pin.note}; load ${machine.loadavg}`,
);

const date = new Date().toISOString();
const results = [];
for (const w of selected) results.push(await runWorkload(w, env));
const run = {
  date,
  smoke: ctx.smoke,
  rounds: ctx.rounds,
  duration: ctx.duration ?? null,
  build: ctx.dist ? 'dist' : 'src',
  argv: ['node', 'bench/run.mjs', ...process.argv.slice(2)],
  machine,
  pinning: pin.note,
  missing: Object.fromEntries(env.missing),
  workloads: results,
};
printTable(results.map((w) => ({ w, run })));
if (opt['no-save']) console.log('\nbench: --no-save: nothing written');
else {
  const { file } = writeResults(
    benchDir,
    run,
    all.map((w) => w.id),
  );
  console.log(
    `\nbench: wrote ${join('bench', 'results', file.split('/').pop())}, bench/RESULTS.md, bench/results/chart.svg`,
  );
}
if (opt.profile) await profileBehind(results);

/**
 * `--profile`: for each workload with a goal not met, one more sample of its loopwork system under
 * `node --cpu-prof`, summarized in bench/profiles/<workload>.md and gathered in bench/PROFILES.md.
 */
async function profileBehind(measured) {
  const dir = join(benchDir, 'profiles');
  mkdirSync(dir, { recursive: true });
  for (const result of measured) {
    const w = selected.find((x) => x.id === result.id);
    const behind = rowsOf(result, run).filter((r) => r.met === false);
    if (behind.length === 0) continue;
    for (const system of new Set(behind.map((r) => w.systems.find((s) => s.id === r.lw?.id)).filter(Boolean))) {
      const profDir = mkdtempSync(join(tmpdir(), 'loopwork-prof-'));
      let command = null;
      const profiled = {
        ...system,
        argv: (...args) => (command = withCpuProf(system.argv(...args), profDir)),
      };
      try {
        console.log(`\n== profiling ${w.id}: ${system.label}`);
        await w.sample(profiled, ctx);
        const md = profileMarkdown(
          w,
          summarizeProfiles(profDir),
          command.map((a) => a.replace(profDir, '<dir>')),
        );
        if (!opt['no-save']) writeFileSync(profileFile(benchDir, w.id), md);
        console.log(md);
      } catch (e) {
        console.log(`   profile FAILED: ${(e?.message ?? String(e)).split('\n')[0]}`);
      } finally {
        rmSync(profDir, { recursive: true, force: true });
      }
    }
  }
  if (opt['no-save']) return;
  regenerate(
    benchDir,
    all.map((w) => w.id),
  );
  console.log('bench: wrote bench/PROFILES.md');
}

const failed = results.flatMap((w) => w.systems.filter((s) => s.status === 'failed').map((s) => `${w.id} ${s.label}`));
if (failed.length > 0) {
  console.log(`\nbench: ${failed.length} system(s) FAILED:\n${failed.map((f) => `  ${f}`).join('\n')}`);
  if (ctx.smoke) process.exitCode = 1;
}
