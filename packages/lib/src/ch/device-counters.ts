/**
 * vm.counters as the daemon reports it. CH keeps each disk's latency (`read_latency_min`, `…_max`, `…_avg`, and the
 * same for writes) at u64::MAX until a first request of that kind, and the average scaled down by 10000 from that:
 * numbers that read as 584 millennia and do not survive a JavaScript number besides. A latency of no request is null.
 */
export type DeviceCounters = Record<string, Record<string, number | null>>;

const LATENCY = /^(read|write)_latency_(min|max|avg)$/;

export function deviceCounters(raw: Record<string, Record<string, number>>): DeviceCounters {
  return Object.fromEntries(
    Object.entries(raw).map(([device, counters]) => [
      device,
      Object.fromEntries(
        Object.entries(counters).map(([name, value]) => {
          const kind = LATENCY.exec(name)?.[1];
          return [name, kind !== undefined && counters[`${kind}_ops`] === 0 ? null : value];
        }),
      ),
    ]),
  );
}
