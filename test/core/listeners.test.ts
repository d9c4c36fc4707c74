/**
 * Listener limits: WHEP players and audio sockets share `maxListenersPerPeer`
 * and `maxListeners`; a socket's slot is given back once, however often its
 * release is called. (Listening itself, over real WebRTC and WebSockets, is
 * tested in test/integration/whep.test.ts and test/server/peer-audio-socket.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { Listeners } from '../../src/core/listeners.js';
import { isEarshotError } from '../../src/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return isEarshotError(e) ? e.code : String(e);
  }
}

describe('Listeners', () => {
  it('counts audio sockets against the per-peer and server limits, and frees each slot once', () => {
    const listeners = new Listeners({ maxListenersPerPeer: 2, maxListeners: 3 });
    const a1 = listeners.takeSocketSlot('alice');
    const a2 = listeners.takeSocketSlot('alice');
    expect(codeOf(() => listeners.takeSocketSlot('alice'))).toBe('EARSHOT_LISTENERS_FULL');
    const b1 = listeners.takeSocketSlot('bob');
    expect(listeners.count()).toBe(3);
    expect(codeOf(() => listeners.checkRoom('carol'))).toBe('EARSHOT_LISTENERS_FULL'); // the server's limit
    a1();
    a1(); // idempotent: the slot is not given back twice
    expect(listeners.count('alice')).toBe(1);
    expect(codeOf(() => listeners.checkRoom('carol'))).toBeUndefined();
    a2();
    b1();
    expect(listeners.count()).toBe(0);
  });

  it('refuses every listener when maxListeners is 0 (listening off)', () => {
    expect(codeOf(() => new Listeners({ maxListeners: 0 }).checkRoom('alice'))).toBe('EARSHOT_LISTENERS_FULL');
  });
});
