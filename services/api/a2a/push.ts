/**
 * A2A push notifications (issue 10): configs in Postgres (`a2a_push_configs`), and a sender that
 * POSTs each task event (A2A v1.0 `StreamResponse` JSON, `application/a2a+json`) to the
 * config's URL **through the outbound policy** (the SDK's default sender calls `fetch` directly,
 * which would let a client aim Baton at internal addresses). `authentication` becomes
 * `Authorization: <scheme> <credentials>`, a bare `token` the `X-A2A-Notification-Token` header.
 * A failed push is logged and not retried.
 */
import { randomUUID } from 'node:crypto';
import { TaskPushNotificationConfig, type StreamResponse } from '@a2a-js/sdk';
import {
  V1PushNotificationSerializer,
  type PushNotificationSender,
  type PushNotificationStore,
  type ServerCallContext,
  type StoredPushNotificationConfig,
} from '@a2a-js/sdk/server';
import type { Logger, OutboundHttp } from '../../../lib/index.js';
import { deleteA2aPushConfigs, loadA2aPushConfigs, saveA2aPushConfig } from '../../store/index.js';
import type { EngineDeps } from '../../engine/index.js';
import { principalOfCall } from './tasks.js';

/** Budget of one push, in milliseconds. */
const PUSH_TIMEOUT_MS = 5000;

export class PostgresPushNotificationStore implements PushNotificationStore {
  constructor(private readonly deps: EngineDeps) {}

  async save(taskId: string, context: ServerCallContext, config: TaskPushNotificationConfig): Promise<void> {
    if (!config.id) config.id = randomUUID();
    await saveA2aPushConfig(this.deps.database.db, principalOfCall(context).organizationId, taskId, {
      id: config.id,
      wireVersion: context.requestedVersion || '1.0',
      config: TaskPushNotificationConfig.toJSON({ ...config, taskId }),
    });
  }

  async load(taskId: string, context: ServerCallContext): Promise<TaskPushNotificationConfig[]> {
    return (await this.loadWithMetadata(taskId, context)).map((s) => s.config);
  }

  async loadWithMetadata(taskId: string, context: ServerCallContext): Promise<StoredPushNotificationConfig[]> {
    const rows = await loadA2aPushConfigs(this.deps.database.db, principalOfCall(context).organizationId, taskId);
    return rows.map((r) => ({ config: TaskPushNotificationConfig.fromJSON(r.config), wireVersion: r.wireVersion }));
  }

  async delete(taskId: string, context: ServerCallContext, configId?: string): Promise<void> {
    await deleteA2aPushConfigs(this.deps.database.db, principalOfCall(context).organizationId, taskId, configId);
  }
}

export class OutboundPushSender implements PushNotificationSender {
  private readonly serializer = new V1PushNotificationSerializer();

  constructor(
    private readonly store: PushNotificationStore,
    private readonly http: OutboundHttp,
    private readonly logger: Logger,
  ) {}

  async send(event: StreamResponse, context: ServerCallContext): Promise<void> {
    const payload = event.payload;
    const taskId = payload?.$case === 'task' ? payload.value.id : (payload?.value.taskId ?? '');
    if (!taskId) return;
    const configs = await this.store.load(taskId, context);
    const { body, contentType } = this.serializer.serialize(event);
    for (const config of configs) {
      const auth: Record<string, string> =
        config.authentication?.scheme && config.authentication.credentials
          ? { authorization: `${config.authentication.scheme} ${config.authentication.credentials}` }
          : config.token
            ? { 'x-a2a-notification-token': config.token }
            : {};
      try {
        const response = await this.http({ method: 'POST', url: config.url, headers: { 'content-type': contentType, ...auth }, body, timeoutMs: PUSH_TIMEOUT_MS, responseType: 'text', maxRedirects: 0 });
        if (response.status >= 300) this.logger.warn({ taskId, url: config.url, status: response.status }, 'A2A push notification refused');
      } catch (err) {
        this.logger.warn({ err, taskId, url: config.url }, 'A2A push notification failed');
      }
    }
  }
}
