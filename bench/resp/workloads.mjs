// The Redis protocol: redis-benchmark -P 16 against the flagship's RESP port and a real redis-server (see run.mjs,
// which also runs standalone with its own table).
import { respSample, respSystems } from './run.mjs';

export default function workloads(ctx) {
  const systems = respSystems(ctx);
  return ['SET', 'GET'].map((test) => ({
    id: `resp/${test.toLowerCase()}-P16`,
    title: `RESP ${test}, redis-benchmark -t ${test.toLowerCase()} -P 16 -c 50`,
    metric: { unit: 'req/s', better: 'higher' },
    smoke: true,
    systems,
    goals: [{ vs: 'redis-server', op: '>=', ratio: 0.5, text: '≥ 0.5× redis-server', source: 'issue 7' }],
    sample: (system, c) =>
      respSample(system, c, { test, requests: c.smoke ? 200000 : 1000000, pipeline: 16, clients: 50 }),
  }));
}
