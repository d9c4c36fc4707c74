/**
 * Placement of sessions among engine processes, the division of per-machine
 * settings among them, and the merged /metrics: pure logic, no processes.
 */
import { describe, expect, it } from 'vitest';
import { compareCandidates, LocalPlacement, type EngineLoad } from '../../src/cluster/placement.js';
import { defaultProcesses, defaultThreadsPerEngine, perEngineLimit, splitPortRange } from '../../src/cluster/processes.js';
import { mergeExpositions } from '../../src/cluster/front-metrics.js';

const load = (engine: string, over: Partial<EngineLoad> = {}): EngineLoad => ({ engine, accepting: true, ready: true, sessions: 0, pending: 0, workerUtilization: 0, ...over });

function twoEngines(): LocalPlacement {
  const p = new LocalPlacement();
  p.report(load('0'));
  p.report(load('1'));
  return p;
}

describe('compareCandidates (the one order of engines and of cluster nodes)', () => {
  const entry = (over: Partial<EngineLoad>, owned = 0, answering = 0) => ({ load: load('x', over), owned, answering });
  it('puts room first, then the fewest sessions counting offers being answered, then clearly idler workers', () => {
    expect(compareCandidates(entry({ ready: true }, 5), entry({ ready: false }, 0))).toBeLessThan(0);
    expect(compareCandidates(entry({}, 1, 1), entry({}, 1, 0))).toBeGreaterThan(0);
    expect(compareCandidates(entry({ workerUtilization: 0.1 }), entry({ workerUtilization: 0.5 }))).toBeLessThan(0);
    // Noise between idle candidates is a tie: the cluster then keeps the session on the node that received the POST.
    expect(compareCandidates(entry({ workerUtilization: 0.02 }), entry({ workerUtilization: 0.04 }))).toBe(0);
  });

  it('is what LocalPlacement chooses by: a tie goes to the first engine reported', async () => {
    const p = new LocalPlacement();
    p.report(load('0', { workerUtilization: 0.04 }));
    p.report(load('1', { workerUtilization: 0.01 }));
    const t = await p.begin('tie');
    expect(t.next()).toBe('0');
    t.release();
  });
});

describe('LocalPlacement', () => {
  it('spreads a burst of concurrent offers over the engines before any of them answers', async () => {
    const p = twoEngines();
    const tickets = await Promise.all(['a', 'b', 'c', 'd'].map((peer) => p.begin(peer)));
    const chosen = tickets.map((t) => t.next());
    expect(chosen.sort()).toEqual(['0', '0', '1', '1']);
  });

  it("counts the sessions ahead of a new peer's offer in arrival order: live peers once, earlier new offers, not reconnects", async () => {
    const p = twoEngines();
    p.sessionStarted('0', 'live', 's1');
    const reconnect = await p.begin('live');
    const first = await p.begin('a');
    const second = await p.begin('b');
    // The reconnect adds no session; 'a' came before 'b'.
    expect([p.sessionsAhead('a'), p.sessionsAhead('b')]).toEqual([1, 2]);
    // 'a' announced by its engine before its 201 reached the front: counted once, as a live peer.
    p.sessionStarted('1', 'a', 's2');
    expect([p.sessionsAhead('a'), p.sessionsAhead('b')]).toEqual([2, 2]);
    for (const t of [reconnect, first, second]) t.release();
  });

  it('places a new peer on the engine with the fewest sessions it owns', async () => {
    const p = twoEngines();
    p.sessionStarted('0', 'x', 's1');
    p.sessionStarted('0', 'y', 's2');
    p.sessionStarted('1', 'z', 's3');
    const t = await p.begin('new');
    expect(t.next()).toBe('1');
    t.release();
  });

  it('prefers an engine whose admission has room over a less loaded one without', async () => {
    const p = new LocalPlacement();
    p.report(load('0', { ready: false }));
    p.report(load('1'));
    p.sessionStarted('1', 'x', 's1');
    const t = await p.begin('new');
    expect(t.next()).toBe('1');
    // Refused there too: the engine without room is still worth an offer (its admission decides).
    expect(t.next()).toBe('0');
    expect(t.next()).toBeUndefined();
    t.release();
  });

  it('offers a live peer to the engine that owns it, and to no other', async () => {
    const p = twoEngines();
    p.sessionStarted('1', 'alice', 's1');
    p.sessionStarted('1', 'bob', 's2');
    const t = await p.begin('alice');
    expect(t.owner).toBe('1');
    expect(t.next()).toBe('1');
    expect(t.next()).toBeUndefined();
    t.placed('1', 's3');
    t.release();
    expect(await p.ownerOfPeer('alice')).toBe('1');
    expect(await p.ownerOfSession('s3')).toBe('1');
  });

  it('refuses a second placement of the same peer while the first runs (EARSHOT_PEER_BUSY), and allows it after', async () => {
    const p = twoEngines();
    const first = await p.begin('alice');
    await expect(p.begin('alice')).rejects.toMatchObject({ code: 'EARSHOT_PEER_BUSY', statusCode: 409 });
    first.release();
    first.release(); // idempotent
    const second = await p.begin('alice');
    second.release();
  });

  it('keeps the peer with its replacement when the replaced session ends afterwards', async () => {
    const p = twoEngines();
    p.sessionStarted('0', 'alice', 'old');
    p.sessionStarted('0', 'alice', 'new');
    p.sessionEnded('0', 'alice', 'old');
    expect(await p.ownerOfPeer('alice')).toBe('0');
    expect(await p.ownerOfSession('old')).toBeUndefined();
    p.sessionEnded('0', 'alice', 'new');
    expect(await p.ownerOfPeer('alice')).toBeUndefined();
  });

  it('forgets what a dead engine owned and places nothing on it until it reports again', async () => {
    const p = twoEngines();
    p.sessionStarted('0', 'alice', 's1');
    p.sessionStarted('1', 'bob', 's2');
    expect(p.engineDown('0')).toEqual([{ peer: 'alice', session: 's1' }]);
    expect(await p.ownerOfPeer('alice')).toBeUndefined();
    const t = await p.begin('alice');
    expect(t.next()).toBe('1');
    expect(t.next()).toBeUndefined();
    t.release();
    p.report(load('0'));
    const u = await p.begin('carol');
    expect(u.next()).toBe('0');
    u.release();
  });

  it('counts the sessions it placed or heard of and the offers being placed, before any engine reports them', async () => {
    const p = twoEngines();
    const t = await p.begin('alice');
    expect([p.sessions, p.placing]).toEqual([0, 1]);
    t.placed(t.next()!, 's1');
    t.release();
    p.sessionStarted('1', 'bob', 's2');
    // An engine announcing a session placement recorded already counts it once.
    p.sessionStarted('0', 'alice', 's1');
    expect([p.sessions, p.placing]).toEqual([2, 0]);
    p.sessionEnded('0', 'alice', 's1');
    p.engineDown('1');
    expect(p.sessions).toBe(0);
  });
});

describe('per-machine settings shared among engine processes', () => {
  it('runs one engine up to 3 cores and one per 3 cores (rounded up) above', () => {
    expect([1, 2, 3, 4, 6, 8, 16, 64].map((c) => defaultProcesses(c))).toEqual([1, 1, 1, 2, 2, 3, 6, 22]);
    expect(defaultThreadsPerEngine(2, 2)).toBe(1);
    expect(defaultThreadsPerEngine(4, 16)).toBe(4);
    expect(defaultThreadsPerEngine(4, 2)).toBe(1);
  });

  it('splits the media port range into disjoint contiguous shares, refusing shares under 2 ports', () => {
    expect(splitPortRange([40000, 40099], 2)).toEqual([[40000, 40049], [40050, 40099]]);
    expect(splitPortRange([40000, 40010], 3)).toEqual([[40000, 40003], [40004, 40007], [40008, 40010]]);
    expect(() => splitPortRange([40000, 40004], 3)).toThrow(/icePortRange 40000-40004 has 5 ports/);
    expect(perEngineLimit(500, 3)).toBe(167);
    expect(perEngineLimit(1, 4)).toBe(1);
  });
});

describe('merged /metrics', () => {
  it('labels every sample with its process and keeps one HELP/TYPE per metric family', () => {
    const a = ['# HELP earshot_peers Live peers.', '# TYPE earshot_peers gauge', 'earshot_peers 2', '# HELP lat Latency.', '# TYPE lat histogram', 'lat_bucket{le="0.01"} 3', 'lat_bucket{le="+Inf"} 4', 'lat_sum 0.2', 'lat_count 4', ''].join('\n');
    const b = ['# HELP earshot_peers Live peers.', '# TYPE earshot_peers gauge', 'earshot_peers 5', '# HELP lat Latency.', '# TYPE lat histogram', 'lat_bucket{le="0.01"} 1', 'lat_bucket{le="+Inf"} 1', 'lat_sum 0.001', 'lat_count 1', ''].join('\n');
    const merged = mergeExpositions([
      { label: 'engine', value: '0', text: a },
      { label: 'engine', value: '1', text: b },
    ]);
    expect(merged.split('\n')).toEqual([
      '# HELP earshot_peers Live peers.',
      '# TYPE earshot_peers gauge',
      'earshot_peers{engine="0"} 2',
      'earshot_peers{engine="1"} 5',
      '# HELP lat Latency.',
      '# TYPE lat histogram',
      'lat_bucket{engine="0",le="0.01"} 3',
      'lat_bucket{engine="0",le="+Inf"} 4',
      'lat_sum{engine="0"} 0.2',
      'lat_count{engine="0"} 4',
      'lat_bucket{engine="1",le="0.01"} 1',
      'lat_bucket{engine="1",le="+Inf"} 1',
      'lat_sum{engine="1"} 0.001',
      'lat_count{engine="1"} 1',
      '',
    ]);
  });
});
