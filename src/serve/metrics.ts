/**
 * A few Prometheus metrics in the text exposition format (version 0.0.4), kept by hand: the server needs
 * counters, one latency histogram per route and some gauges, which is not worth a dependency.
 */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
  );
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

export class Metrics {
  private readonly counters = new Map<string, { help: string; values: Map<string, number> }>();
  private readonly histograms = new Map<
    string,
    {
      help: string;
      series: Map<string, { labels: Record<string, string>; counts: number[]; sum: number; count: number }>;
    }
  >();
  private readonly gauges = new Map<string, { help: string; read: () => number }>();

  inc(name: string, help: string, labels: Record<string, string> = {}, by = 1): void {
    let c = this.counters.get(name);
    if (!c) this.counters.set(name, (c = { help, values: new Map() }));
    const key = labelText(labels);
    c.values.set(key, (c.values.get(key) ?? 0) + by);
  }

  observe(name: string, help: string, labels: Record<string, string>, seconds: number): void {
    let h = this.histograms.get(name);
    if (!h) this.histograms.set(name, (h = { help, series: new Map() }));
    const key = labelText(labels);
    let s = h.series.get(key);
    if (!s) h.series.set(key, (s = { labels, counts: new Array<number>(BUCKETS.length).fill(0), sum: 0, count: 0 }));
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) s.counts[i]++;
    s.sum += seconds;
    s.count++;
  }

  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, { help, read });
  }

  render(): string {
    const out: string[] = [];
    for (const [name, c] of this.counters) {
      out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
      for (const [labels, v] of c.values) out.push(`${name}${labels} ${v}`);
    }
    for (const [name, h] of this.histograms) {
      out.push(`# HELP ${name} ${h.help}`, `# TYPE ${name} histogram`);
      for (const s of h.series.values()) {
        BUCKETS.forEach((b, i) =>
          out.push(`${name}_bucket${labelText({ ...s.labels, le: String(b) })} ${s.counts[i]}`),
        );
        out.push(`${name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
        out.push(`${name}_sum${labelText(s.labels)} ${s.sum}`, `${name}_count${labelText(s.labels)} ${s.count}`);
      }
    }
    for (const [name, g] of this.gauges)
      out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.read()}`);
    return out.join('\n') + '\n';
  }
}
