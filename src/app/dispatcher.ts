import type { Broker, BrokerHealth } from '../broker/broker.ts';
import { eventMessage } from '../broker/messages.ts';
import { parseDestination } from '../contract/destinations.ts';
import { ChatError } from '../contract/errors.ts';
import { copyFor } from '../delivery/copy.ts';
import { directTarget, type Fanout } from '../delivery/fanout.ts';
import type { Frame } from '../stomp/frame.ts';
import type { SessionHandler, StompSession, Subscription } from '../stomp/session.ts';
import type { Logger } from '../logger.ts';
import type { Connections } from './connections.ts';
import type { ErrorChannel } from './error-channel.ts';
import type { GatewayOrigin } from './origin.ts';
import type { RandomChat } from './random.ts';
import type { Relay } from './relay.ts';
import { roomAction } from './room-actions.ts';
import type { RoomSubscriptions } from './room-subscriptions.ts';
import { userKey, type RoomService } from './rooms.ts';

/**
 * The application side of every STOMP session: routes CONNECT to Connections, each SUBSCRIBE by destination
 * (room feeds, notifications, errors, health, relay topics and queues) and each SEND to its handler.
 */
export class Dispatcher implements SessionHandler {
  private readonly healthSubs = new Map<StompSession, Subscription>();

  constructor(
    private readonly connections: Connections,
    private readonly errors: ErrorChannel,
    private readonly roomSubscriptions: RoomSubscriptions,
    private readonly rooms: RoomService,
    private readonly fanout: Fanout,
    private readonly relay: Relay,
    private readonly broker: Broker,
    private readonly gateway: GatewayOrigin,
    private readonly log: Logger,
    private readonly random: RandomChat,
  ) {
    broker.onHealth((health) => {
      for (const [session, sub] of this.healthSubs) this.sendHealth(session, sub, health);
      if (health === 'up') roomSubscriptions.catchUpAll();
    });
  }

  connect(session: StompSession, frame: Frame): Promise<Record<string, string>> {
    return this.connections.connect(session, frame);
  }

  async subscribe(session: StompSession, sub: Subscription): Promise<void> {
    const state = this.connections.stateOf(session);
    const dest = parseDestination(sub.destination, true);
    if (!dest) throw new ChatError('FORBIDDEN', `cannot subscribe to ${sub.destination}`);
    switch (dest.kind) {
      case 'room':
        state.cleanups.set(sub.id, await this.roomSubscriptions.subscribe(session, sub, dest.roomId));
        return;
      case 'notifications': {
        const target = directTarget((m) => copyFor(session, sub, m));
        await this.fanout.add('chat', userKey(session.userId), target);
        state.cleanups.set(sub.id, () => this.fanout.remove('chat', userKey(session.userId), target));
        return;
      }
      case 'errors':
        state.cleanups.set(sub.id, this.errors.attach(session, sub));
        return;
      case 'health':
        this.healthSubs.set(session, sub);
        state.cleanups.set(sub.id, () => void this.healthSubs.delete(session));
        this.sendHealth(session, sub, this.broker.health());
        return;
      case 'topic':
        state.cleanups.set(sub.id, await this.relay.subscribeTopic(session, sub, dest.name));
        return;
      case 'queue':
        state.cleanups.set(sub.id, await this.relay.subscribeQueue(session, sub, dest.name));
        return;
      default:
        throw new ChatError('BAD_REQUEST', `${sub.destination} is not a destination to subscribe to`);
    }
  }

  async unsubscribe(session: StompSession, sub: Subscription): Promise<void> {
    const state = this.connections.stateOf(session);
    const cleanup = state.cleanups.get(sub.id);
    state.cleanups.delete(sub.id);
    await cleanup?.();
  }

  async send(session: StompSession, frame: Frame): Promise<void> {
    const dest = parseDestination(frame.headers.destination!, false);
    if (!dest) throw new ChatError('FORBIDDEN', `cannot send to ${frame.headers.destination}`);
    switch (dest.kind) {
      case 'room-action':
        return roomAction(this.rooms, session, frame, dest.roomId, dest.action);
      case 'topic':
      case 'queue':
        return this.relay.send(session, frame, dest.kind, dest.name);
      case 'app':
        if (dest.name === 'auth.refresh') return this.connections.refresh(session, frame);
        if (dest.name === 'random.join') return this.random.joinSession(session);
        return this.random.leaveSession(session);
      default:
        throw new ChatError('BAD_REQUEST', `${frame.headers.destination} is not a destination to send to`);
    }
  }

  ack(session: StompSession, frame: Frame, positive: boolean): Promise<void> {
    return this.relay.ack(session, frame, positive);
  }

  closed(session: StompSession): void {
    this.healthSubs.delete(session);
    this.random.closed(session);
    this.connections.closed(session);
  }

  reportError(session: StompSession, error: ChatError, frame: Frame): void {
    this.errors.report(session, error, frame);
  }

  /** End a subscription from the server side, telling the client why (with the SUBSCRIBE's client-request-code). */
  endSubscription(session: StompSession, sub: Subscription, reason: ChatError): void {
    let state;
    try {
      state = this.connections.stateOf(session);
    } catch {
      return; // the session ended meanwhile, and its cleanups ran
    }
    const cleanup = state.cleanups.get(sub.id);
    if (!cleanup) return;
    state.cleanups.delete(sub.id);
    session.subscriptions.delete(sub.id);
    Promise.resolve(cleanup()).catch((err: unknown) => this.log.warn({ err }, 'ending a subscription failed'));
    const { receipt: _answeredAlready, ...headers } = sub.headers;
    this.errors.report(session, reason, { command: 'SUBSCRIBE', headers, body: Buffer.alloc(0) });
  }

  private sendHealth(session: StompSession, sub: Subscription, health: BrokerHealth): void {
    session.sendMessage(sub, eventMessage({ type: 'HEALTH', broker: health, at: new Date().toISOString() }, this.gateway.next()));
  }
}
