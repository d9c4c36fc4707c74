/**
 * Recordings: list with duration and size, and download as audio/wav.
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { EarshotCore } from '../earshot-core.js';

export function registerRecordingRoutes(app: FastifyInstance, core: EarshotCore): void {
  app.get('/recordings', async () => ({ recordings: await core.store.list() }));

  // `*`: names may include the subdirectories of a record sink's `directory` (calls/demo/x.wav).
  app.get<{ Params: { '*': string } }>('/recordings/*', async (req, reply) => {
    const entry = await core.store.describe(req.params['*']); // validates the name, 404s unknown files
    return reply
      .type('audio/wav')
      .header('Content-Disposition', `attachment; filename="${entry.name.split('/').pop()}"`)
      .header('Cache-Control', 'no-store')
      .send(createReadStream(core.store.pathOf(entry.name)));
  });
}
