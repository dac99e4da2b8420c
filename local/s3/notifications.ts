import type { S3Event } from "aws-lambda";
import {
  createObjectCreatedEvent,
  createTestEvent,
  type ObjectCreatedEventName,
} from "../s3-events";
import type { S3Request } from "./request";
import type { S3State } from "./state";
import type { StoredObject } from "./store";

export interface NotificationRule {
  /** Shown as `s3.configurationId` in the event. */
  id?: string;
  /** Only objects in this bucket; any bucket when omitted. */
  bucket?: string;
  /** Filters on the (unencoded) key name, as S3's prefix/suffix filter rules do. */
  prefix?: string;
  suffix?: string;
  /** `ObjectCreated:*` (the default), `ObjectCreated:Put`, ... with or without `s3:`. */
  events?: string[];
  /**
   * Sends an `s3:TestEvent` when the rule is added, as S3 does when a notification
   * configuration is saved. A Lambda handler typed for S3Event receives it the same way.
   */
  sendTestEvent?: boolean;
  deliver(event: S3Event): Promise<unknown> | unknown;
}

export interface DeliveryFailure {
  ruleId: string;
  event: S3Event;
  error: unknown;
}

export interface NotificationState {
  readonly rules: NotificationRule[];
  readonly inFlight: Set<Promise<void>>;
  readonly deliveryErrors: DeliveryFailure[];
  /** Numbers rules without an id, counting every rule ever added. */
  ruleCounter: number;
  readonly onDeliveryError?: (failure: DeliveryFailure) => void;
}

/** What an operation that created an object reports, for the rules to match. */
export interface Created {
  bucket: string;
  object: StoredObject;
  eventName: ObjectCreatedEventName;
  request: S3Request;
}

export function createNotificationState(
  onDeliveryError?: (failure: DeliveryFailure) => void,
): NotificationState {
  return { rules: [], inFlight: new Set(), deliveryErrors: [], ruleCounter: 0, onDeliveryError };
}

export function addNotification(state: S3State, rule: NotificationRule): void {
  const notifications = state.notifications;
  notifications.ruleCounter += 1;
  const withId =
    rule.id === undefined ? { ...rule, id: `notification-${notifications.ruleCounter}` } : rule;
  notifications.rules.push(withId);
  if (withId.sendTestEvent) {
    for (const bucket of withId.bucket === undefined
      ? [...state.store.buckets.keys()]
      : [withId.bucket]) {
      scheduleDelivery(notifications, withId, createTestEvent(bucket) as unknown as S3Event);
    }
  }
}

export function notifyCreated(
  state: S3State,
  { bucket, object, eventName, request }: Created,
): void {
  const notifications = state.notifications;
  for (const rule of notifications.rules) {
    if (rule.bucket !== undefined && rule.bucket !== bucket) continue;
    if (rule.prefix !== undefined && !object.key.startsWith(rule.prefix)) continue;
    if (rule.suffix !== undefined && !object.key.endsWith(rule.suffix)) continue;
    if (!matchesEventName(rule.events, eventName)) continue;
    scheduleDelivery(
      notifications,
      rule,
      createObjectCreatedEvent({
        bucket,
        key: object.key,
        size: object.size,
        eTag: object.etag,
        eventName,
        versionId: object.versionId,
        region: state.region,
        eventTime: new Date(),
        configurationId: ruleId(notifications, rule),
        sourceIPAddress: normalizeIp(request.req.socket.remoteAddress),
        requestId: request.requestId,
        hostId: request.hostId,
      }),
    );
  }
}

/** Resolves when no deliveries are in flight, including ones they caused. */
export async function waitForDeliveries(notifications: NotificationState): Promise<void> {
  while (notifications.inFlight.size > 0) {
    await Promise.all([...notifications.inFlight]);
  }
}

function ruleId(notifications: NotificationState, rule: NotificationRule): string {
  return rule.id ?? `notification-${notifications.rules.indexOf(rule) + 1}`;
}

/**
 * Registers the delivery synchronously (so `idle()` sees it as soon as the client has
 * its response) and runs it on a later tick, after the response is written.
 */
function scheduleDelivery(
  notifications: NotificationState,
  rule: NotificationRule,
  event: S3Event,
): void {
  const delivery = new Promise<void>((resolve) => {
    setImmediate(() => {
      Promise.resolve()
        .then(() => rule.deliver(event))
        .catch((error: unknown) => {
          const failure = { ruleId: ruleId(notifications, rule), event, error };
          notifications.deliveryErrors.push(failure);
          try {
            notifications.onDeliveryError?.(failure);
          } catch {
            // A failing error callback must not take the server down either.
          }
        })
        .finally(resolve);
    });
  });
  notifications.inFlight.add(delivery);
  void delivery.then(() => notifications.inFlight.delete(delivery));
}

function matchesEventName(
  events: string[] | undefined,
  eventName: ObjectCreatedEventName,
): boolean {
  const wanted = (events ?? ["ObjectCreated:*"]).map((name) => name.replace(/^s3:/, ""));
  return wanted.includes(eventName) || wanted.includes(`${eventName.split(":")[0]}:*`);
}

function normalizeIp(address: string | undefined): string {
  if (!address) return "127.0.0.1";
  return address.startsWith("::ffff:") ? address.slice("::ffff:".length) : address;
}
