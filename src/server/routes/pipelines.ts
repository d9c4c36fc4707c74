/**
 * Pipelines and room bindings over HTTP:
 * GET /pipelines, GET/PUT/DELETE /pipelines/:name, GET /rooms, GET/PUT/DELETE /rooms/:room.
 * A PUT is validated completely before anything changes (422 with every
 * problem); running streams keep the version they started with.
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../../errors.js';
import type { Pipeline } from '../../pipeline/pipeline.js';
import type { EarshotCore } from '../../core/earshot-core.js';
import { checkName } from '../../core/names.js';

const PIPELINE_BODY_LIMIT = 256 * 1024;
const PIPELINE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

function summary(p: Pipeline, core: EarshotCore) {
  return {
    name: p.name,
    description: p.description,
    channels: p.channels,
    default: p.name === core.defaultPipelineName,
    branches: p.branches.map((b) => ({
      name: b.name,
      stages: b.stages.map((s) => s.type),
      sinks: b.sinks.map((s) => s.type),
      sampleRate: b.sampleRate,
      channels: b.channels,
      sampleFormat: b.sampleFormat,
      // False after a custom stage: the three above are assumed until a stream starts (GET /stats/:peer has the real format).
      formatKnown: b.formatKnown,
    })),
    inUse: core.pipelineUsers(p.name) ?? null,
  };
}

function checkPipelineName(name: string): void {
  if (!PIPELINE_NAME.test(name)) throw errors.BODY_INVALID(`Pipeline name "${name}" is not allowed: use 1–64 letters, digits, "_" and "-", starting with a letter or digit.`);
}

export function registerPipelineRoutes(app: FastifyInstance, core: EarshotCore): void {
  app.get('/pipelines', async () => ({
    default: core.defaultPipelineName,
    directory: core.pipelines.dir ?? null,
    // False for the bundled pipelines: PUT and DELETE get 409 EARSHOT_PIPELINES_READ_ONLY.
    writable: core.pipelines.writable,
    pipelines: core.pipelines.list().map((p) => summary(p, core)),
    // Files edited on disk into something that cannot be loaded: the log said so once, this says so until fixed.
    invalidFiles: core.pipelines.fileProblems(),
  }));

  app.get<{ Params: { name: string } }>('/pipelines/:name', async (req) => {
    // The document itself, so GET → edit → PUT round-trips.
    return core.pipelines.get(req.params.name).toJSON();
  });

  app.put<{ Params: { name: string }; Body: unknown }>('/pipelines/:name', { bodyLimit: PIPELINE_BODY_LIMIT }, async (req, reply) => {
    checkPipelineName(req.params.name);
    if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
      throw errors.BODY_INVALID('The body must be a pipeline document (JSON object) with Content-Type application/json.');
    }
    // The processors are known here: a processor stage naming none registered as a stage is refused now, not at the first stream.
    const { pipeline, created } = await core.pipelines.put(req.params.name, req.body, { processors: core.processors });
    return reply.code(created ? 201 : 200).send(summary(pipeline, core));
  });

  app.delete<{ Params: { name: string } }>('/pipelines/:name', async (req, reply) => {
    core.pipelines.get(req.params.name); // 404 first
    // Then read-only: a bundled pipeline can never be deleted, so "in use" would send the client to end sessions for nothing.
    core.pipelines.checkWritable();
    await core.deletePipeline(req.params.name);
    return reply.code(204).send();
  });

  app.get('/rooms', async () => ({ default: core.defaultPipelineName, rooms: core.roomBindings() }));

  app.get<{ Params: { room: string } }>('/rooms/:room', async (req) => {
    checkName('room', req.params.room);
    const bindings = core.roomBindings();
    // Own keys only: `constructor` or `toString` is a room name like any other, not bound.
    const bound = Object.hasOwn(bindings, req.params.room) ? bindings[req.params.room] : undefined;
    return { room: req.params.room, pipeline: bound ?? core.defaultPipelineName, bound: bound !== undefined };
  });

  app.put<{ Params: { room: string }; Body: unknown }>('/rooms/:room', { bodyLimit: 4096 }, async (req) => {
    checkName('room', req.params.room);
    const body = req.body;
    const keys = typeof body === 'object' && body !== null && !Array.isArray(body) ? Object.keys(body) : [];
    const pipeline = (body as { pipeline?: unknown } | null)?.pipeline;
    if (typeof pipeline !== 'string' || keys.some((k) => k !== 'pipeline')) {
      throw errors.BODY_INVALID('The body must be {"pipeline": "<name>"} (GET /pipelines lists the names).');
    }
    await core.bindRoom(req.params.room, pipeline);
    return { room: req.params.room, pipeline, bound: true };
  });

  app.delete<{ Params: { room: string } }>('/rooms/:room', async (req, reply) => {
    checkName('room', req.params.room);
    await core.unbindRoom(req.params.room);
    return reply.code(204).send();
  });
}
