/**
 * The stack's EventBridge side, from the template: its buses and rules on the rehearsal's bus
 * (event-bus.ts), each rule's Lambda targets invoked asynchronously once the function's resource
 * policy lets the rule invoke it; PutEvents as the functions call it (authorized per bus) and as
 * a client calls it; and the lifecycle events the functions put, as the product's events.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { eventFromBus } from '../../adapters/eventbridge/eventbridge-publisher';
import type { LifecycleEvent } from '../../core/events';
import type { RehearsalAccess } from './access';
import { invokeAsynchronously } from './async-invocation';
import { ServiceError, type Caller } from './aws-endpoint';
import { PutEventsTooLargeError, RehearsalEventBus, type BusEvent, type PutEventsEntry, type RehearsalRule } from './event-bus';
import type { RehearsalFunctions } from './functions';
import { RehearsalError } from './rehearsal-error';
import type { RehearsalTemplate } from './template';

export interface EventRulesContext {
  template: RehearsalTemplate;
  /** Each bus by its name and ARN (physical-ids.ts). */
  busNames: Map<string, string>;
  access: RehearsalAccess;
  functions: RehearsalFunctions;
  sqs: SQSClient;
  stopped(): boolean;
  onError(error: unknown): void;
}

export class RehearsalEvents {
  readonly bus: RehearsalEventBus;
  private readonly listeners = new Set<(event: BusEvent) => void>();

  constructor(private readonly ctx: EventRulesContext) {
    const t = ctx.template;
    const rules: RehearsalRule[] = t.ofType('AWS::Events::Rule').map(([id, r]) => {
      const p = t.resolve(r.Properties ?? {}) as Record<string, any>;
      return {
        arn: t.physicalOf(id).attributes.Arn,
        name: t.physicalOf(id).ref,
        busName: this.busNameOf(p.EventBusName) ?? 'default',
        pattern: p.EventPattern ?? {},
        enabled: (p.State ?? 'ENABLED') === 'ENABLED',
        targets: (p.Targets ?? []).map((target: { Arn: string }) => ({ arn: target.Arn })),
      };
    });
    this.bus = new RehearsalEventBus(rules, t.env, (rule, targetArn, event) => this.deliverToTarget(rule, targetArn, event));
    this.bus.subscribe((event) => {
      for (const listener of this.listeners) listener(event);
    });
  }

  /** PutEvents as a client would (an EventBridge rule may start a run). */
  putEvents(entries: PutEventsEntry[]) {
    return this.bus.putEvents(entries, (name) => this.busNameOf(name));
  }

  /** The EventBridge API (JSON protocol) as the functions call it: PutEvents, authorized on each entry's bus. */
  api(caller: Caller, operation: string, body: Record<string, any>): unknown {
    if (operation !== 'PutEvents') throw new ServiceError('UnknownOperationException', `the rehearsal does not serve EventBridge ${operation}`);
    const entries = (body.Entries ?? []) as PutEventsEntry[];
    for (const entry of entries) {
      const bus = this.busNameOf(entry.EventBusName) ?? String(entry.EventBusName);
      this.ctx.access.authorize(caller, 'events:PutEvents', this.ctx.template.arn('events', `event-bus/${bus}`));
    }
    try {
      return this.putEvents(entries);
    } catch (error) {
      if (error instanceof PutEventsTooLargeError) throw new ServiceError(error.name, error.message);
      throw error;
    }
  }

  /** Every lifecycle event the functions put on the team bus. */
  onLifecycleEvent(listener: (event: LifecycleEvent) => void): () => void {
    const wrapped = (e: BusEvent) => {
      if (e.source !== 'branch-spawner') return;
      listener(eventFromBus(e['detail-type'], e.detail));
    };
    this.listeners.add(wrapped);
    return () => this.listeners.delete(wrapped);
  }

  private busNameOf(name: string | undefined): string | undefined {
    if (name === undefined) return 'default';
    return this.ctx.busNames.get(name);
  }

  /** A rule's Lambda target: an asynchronous invocation, once the function's resource policy allows the rule. */
  private async deliverToTarget(rule: RehearsalRule, targetArn: string, event: BusEvent): Promise<void> {
    const host = this.ctx.functions.find(targetArn);
    if (!host) {
      this.ctx.onError(new RehearsalError(`rule ${rule.name}: target ${targetArn} is not a function of the template`));
      return;
    }
    if (!this.ctx.access.permits(host.fn, 'events.amazonaws.com', rule.arn)) {
      this.ctx.access.denyInvocation(`EventBridge rule ${rule.name}`, host.fn);
      return;
    }
    await invokeAsynchronously(this.ctx, host, event, `rule ${rule.name}`);
  }
}
