// piscina's worker for bench/executor/run.ts: the same work as the function loopwork's pools run.
export default function increment(x) {
  return x + 1;
}
