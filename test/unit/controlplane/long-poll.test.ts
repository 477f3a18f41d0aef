import { EventEmitter, getEventListeners } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { HttpRefusal } from '../../../webhook/policy/http.js';
import { waitForCaller, waitParam, WaitRoom } from '../../../webhook/long-poll.js';

// The long poll both GET /v1/policy and GET /v1/credentials use: every way a wait ends must leave nothing behind
// (a timer, an abort listener, a socket listener, a waiter), since each proxy holds one open at all times.

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
const req = (q: string) => ({ url: new URL(`https://cp/v1/policy${q}`) });

class FakeSocket extends EventEmitter {
  destroyed = false;
}
const callerOn = (socket: FakeSocket) => ({ raw: { socket } as unknown as IncomingMessage });

describe('waitParam', () => {
  it('is 0 without wait, the duration with it, capped at the maximum', () => {
    expect(waitParam(req(''), 60_000)).toBe(0);
    expect(waitParam(req('?wait=30s'), 60_000)).toBe(30_000);
    expect(waitParam(req('?wait=10m'), 60_000)).toBe(60_000);
  });

  it('refuses a value that is not a duration with 400 naming the parameter', () => {
    let err: unknown;
    try {
      waitParam(req('?wait=soon'), 60_000);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HttpRefusal);
    expect((err as HttpRefusal).status).toBe(400);
    expect((err as HttpRefusal).message).toBe('wait must be a duration like 30s (got "soon")');
  });
});

describe('WaitRoom', () => {
  it('resolves at once when the condition already holds, without waiting', async () => {
    const room = new WaitRoom();
    expect(await room.wait(() => true, 60_000)).toBe(true);
    expect(room.size).toBe(0);
  });

  it('wakes only waiters whose condition holds; each way out leaves no timer, listener or waiter', async () => {
    const room = new WaitRoom();
    const baseTimers = timers();
    let version = 0;
    const abort = new AbortController();
    const onChange = room.wait(() => version !== 0, 60_000);
    const onOther = room.wait(() => version === 5, 60_000);
    const onAbort = room.wait(() => false, 60_000, abort.signal);
    const onTimeout = room.wait(() => false, 30);
    expect(room.size).toBe(4);
    expect(timers()).toBe(baseTimers + 4);
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(1);

    room.wake(); // nothing changed: nobody leaves
    expect(room.size).toBe(4);
    version = 1;
    room.wake();
    expect(await onChange).toBe(true);
    expect(room.size).toBe(3); // the waiter for version 5 stays
    abort.abort();
    expect(await onAbort).toBe(false);
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(0);
    expect(await onTimeout).toBe(false);
    version = 5;
    room.wake();
    expect(await onOther).toBe(true);
    expect(room.size).toBe(0);
    expect(timers()).toBe(baseTimers);
  });

  it('does not wait on an already aborted signal', async () => {
    const room = new WaitRoom();
    const baseTimers = timers();
    expect(await room.wait(() => false, 60_000, AbortSignal.abort())).toBe(false);
    expect(room.size).toBe(0);
    expect(timers()).toBe(baseTimers);
  });
});

describe('waitForCaller', () => {
  it('ends the wait when the caller hangs up, says so, and removes its socket listener', async () => {
    const socket = new FakeSocket();
    const room = new WaitRoom();
    const result = waitForCaller(callerOn(socket), (signal) => room.wait(() => false, 60_000, signal));
    expect(socket.listenerCount('close')).toBe(1);
    socket.emit('close');
    expect(await result).toBe(false);
    expect(socket.listenerCount('close')).toBe(0);
    expect(room.size).toBe(0);
  });

  it('releases a waiter that lost a race as soon as the other wins', async () => {
    const socket = new FakeSocket();
    const room = new WaitRoom();
    const baseTimers = timers();
    let won = false;
    const winner = new WaitRoom();
    const result = waitForCaller(callerOn(socket), (signal) => Promise.race([winner.wait(() => won, 60_000, signal), room.wait(() => false, 60_000, signal)]));
    won = true;
    winner.wake();
    expect(await result).toBe(true);
    expect(room.size).toBe(0); // not left until its 60 s timeout
    expect(timers()).toBe(baseTimers);
    expect(socket.listenerCount('close')).toBe(0);
  });

  it('does not start waiting for a caller whose connection is already closed', async () => {
    const socket = new FakeSocket();
    socket.destroyed = true;
    let started = false;
    expect(
      await waitForCaller(callerOn(socket), async () => {
        started = true;
      }),
    ).toBe(false);
    expect(started).toBe(false);
  });
});
