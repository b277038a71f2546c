/**
 * Prometheus metrics of an app (one prom-client registry per app): requests, their durations, open connections
 * and the loop's lag, plus prom-client's default process metrics.
 *
 * The request counter and duration histogram are kept in plain numbers per (method, route, status), cached on
 * the route, and turned into prom-client's metric objects only when scraped: a request costs a few additions,
 * not prom-client's label hashing.
 *
 * @module
 */
import type { BaseEventLoop, TimerHandle } from '@loopwork/server';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** Options of an app's metrics. */
export interface MetricsOptions {
  /** The path the metrics are served on; default `/metrics`. */
  readonly path?: string;
  /** Add prom-client's default metrics (process CPU, memory, GC, Node's event loop lag); default true. */
  readonly defaultMetrics?: boolean;
  /** Upper bounds of the request duration histogram's buckets, in seconds, ascending. */
  readonly buckets?: readonly number[];
  /** Seconds between two loop-lag probes; default 1. */
  readonly lagInterval?: number;
}

const DEFAULT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** @internal The counts of one method, route and status. */
export class RequestMetrics {
  readonly labels: Readonly<Record<'method' | 'route' | 'status_code', string>>;
  count = 0;
  sum = 0;
  /** Observations per bucket (not cumulative); the last slot is `+Inf`. */
  readonly buckets: Float64Array;
  readonly #bounds: readonly number[];

  constructor(labels: RequestMetrics['labels'], bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.buckets = new Float64Array(bounds.length + 1);
  }

  /** Counts one request that took `seconds`. */
  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    this.buckets[i]!++;
  }
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** A metric object as prom-client's registry reads it (`get()` at scrape time). */
interface ScrapedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' }>;
  reset(): void;
}

/** @internal */
export class AppMetrics {
  readonly registry = new Registry();
  readonly path: string;
  readonly #entries: RequestMetrics[] = [];
  readonly #bounds: readonly number[];
  readonly #lagInterval: number;
  #lagTimer: TimerHandle | null = null;
  #lastLag = 0;

  /**
   * @param options - the options.
   * @param openConnections - read at each scrape.
   * @throws RangeError for buckets that are not ascending positive numbers.
   */
  constructor(options: MetricsOptions, openConnections: () => number) {
    this.path = options.path ?? '/metrics';
    this.#lagInterval = options.lagInterval ?? 1;
    const bounds = options.buckets ?? DEFAULT_BUCKETS;
    for (let i = 0; i < bounds.length; i++) {
      if (!(bounds[i]! > 0) || (i > 0 && bounds[i]! <= bounds[i - 1]!)) {
        throw new RangeError('metrics buckets must be ascending positive numbers of seconds');
      }
    }
    this.#bounds = [...bounds];
    const entries = this.#entries;
    const counter: ScrapedMetric = {
      name: 'http_requests_total',
      help: 'HTTP requests answered, by method, route and status',
      type: 'counter',
      aggregator: 'sum',
      get: async () => ({
        name: counter.name,
        help: counter.help,
        type: counter.type,
        aggregator: 'sum',
        values: entries.map((e) => ({ value: e.count, labels: { ...e.labels } })),
      }),
      reset: () => undefined,
    };
    const histogram: ScrapedMetric = {
      name: 'http_request_duration_seconds',
      help: 'Seconds from the first byte of a request to the end of its response',
      type: 'histogram',
      aggregator: 'sum',
      get: async () => {
        const values: MetricValue[] = [];
        for (const e of entries) {
          let cumulative = 0;
          for (let i = 0; i <= this.#bounds.length; i++) {
            cumulative += e.buckets[i]!;
            const le = i < this.#bounds.length ? this.#bounds[i]! : '+Inf';
            values.push({ value: cumulative, labels: { le, ...e.labels }, metricName: `${histogram.name}_bucket` });
          }
          values.push({ value: e.sum, labels: { ...e.labels }, metricName: `${histogram.name}_sum` });
          values.push({ value: e.count, labels: { ...e.labels }, metricName: `${histogram.name}_count` });
        }
        return { name: histogram.name, help: histogram.help, type: histogram.type, aggregator: 'sum', values };
      },
      reset: () => undefined,
    };
    // prom-client's registry takes any object with a name and get(); its own types ask for its classes.
    type Registerable = Parameters<Registry['registerMetric']>[0];
    this.registry.registerMetric(counter as unknown as Registerable);
    this.registry.registerMetric(histogram as unknown as Registerable);
    const registers = [this.registry];
    new Gauge({
      name: 'http_open_connections',
      help: 'Connections open on the app listeners (HTTP and others)',
      registers,
      collect() {
        this.set(openConnections());
      },
    });
    const lastLag = (): number => this.#lastLag;
    new Gauge({
      name: 'loopwork_loop_lag_seconds',
      help: 'How late the last loop-lag probe timer ran, in seconds',
      registers,
      collect() {
        this.set(lastLag());
      },
    });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The counts for one method, route and status (made on first use; cache it). */
  forRoute(method: string, route: string, status: number): RequestMetrics {
    const m = new RequestMetrics({ method, route, status_code: String(status) }, this.#bounds);
    this.#entries.push(m);
    return m;
  }

  /** Starts probing the loop's lag: a timer every `lagInterval` seconds records how late it ran. */
  startLagProbe(loop: BaseEventLoop): void {
    if (this.#lagTimer !== null) return;
    const interval = this.#lagInterval;
    const probe = (expected: number): void => {
      const now = loop.time();
      this.#lastLag = Math.max(0, now - expected);
      this.#lagTimer = loop.callAt(now + interval, probe, now + interval);
    };
    const first = loop.time() + interval;
    this.#lagTimer = loop.callAt(first, probe, first);
  }

  /** Stops the probe. */
  stopLagProbe(): void {
    this.#lagTimer?.cancel();
    this.#lagTimer = null;
  }

  /** The metrics in Prometheus' text format, with its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
