/**
 * Every error earshot reports has a stable `code` (`EARSHOT_…`), an HTTP status
 * and a message that says what to change (DESIGN.md invariant 7). Like fastify's
 * `FST_ERR_…`, each code has its own constructor and is never reused for a
 * different meaning. HTTP responses carry them as RFC 9457 problem details.
 */

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  instance?: string;
  /** Extra, error-specific members (e.g. the list of validation problems). */
  [extension: string]: unknown;
}

export class EarshotError extends Error {
  override readonly name = 'EarshotError';
  constructor(
    /** Stable machine-readable code, e.g. `EARSHOT_SDP_INVALID`. */
    readonly code: string,
    /** HTTP status used when the error reaches an HTTP client. */
    readonly statusCode: number,
    /** Short, fixed summary of the error class (the problem `title`). */
    readonly title: string,
    message: string,
    /** Extra members for the problem document. */
    readonly extensions: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  toProblem(instance?: string): ProblemDetails {
    return {
      type: `https://earshot.dev/errors/${this.code}`,
      title: this.title,
      status: this.statusCode,
      code: this.code,
      detail: this.message,
      ...(instance ? { instance } : {}),
      ...this.extensions,
    };
  }
}

type ErrorFactory<A extends unknown[]> = ((...args: A) => EarshotError) & { code: string; statusCode: number };

function define<A extends unknown[]>(
  code: string,
  statusCode: number,
  title: string,
  message: (...args: A) => string,
  extensions?: (...args: A) => Record<string, unknown>,
): ErrorFactory<A> {
  const factory = (...args: A) => new EarshotError(code, statusCode, title, message(...args), extensions?.(...args));
  return Object.assign(factory, { code, statusCode });
}

export const errors = {
  UNSUPPORTED_MEDIA_TYPE: define('EARSHOT_UNSUPPORTED_MEDIA_TYPE', 415, 'Unsupported media type',
    (got: string | undefined, want: string) => `Content-Type must be ${want}, got ${got ? `"${got}"` : 'none'}`),
  SDP_INVALID: define('EARSHOT_SDP_INVALID', 400, 'Invalid SDP offer',
    (why: string) => `The body is not a usable SDP offer: ${why}`),
  NO_OPUS_AUDIO: define('EARSHOT_NO_OPUS_AUDIO', 422, 'No Opus audio in offer',
    (why: string) => `The offer has no audio section earshot can receive: ${why}. Offer an audio m-line with opus/48000/2 and direction sendonly or sendrecv (RFC 7587).`),
  NEGOTIATION_FAILED: define('EARSHOT_NEGOTIATION_FAILED', 422, 'WebRTC negotiation failed',
    (why: string) => `The offer could not be answered: ${why}`),
  SESSION_NOT_FOUND: define('EARSHOT_SESSION_NOT_FOUND', 404, 'Unknown WHIP session',
    (id: string) => `No WHIP session "${id}": it has ended or never existed. Start a new one with POST /whip/:room/:peer.`),
  PEER_NOT_FOUND: define('EARSHOT_PEER_NOT_FOUND', 404, 'Unknown peer',
    (peer: string) => `No active peer "${peer}". GET /stats lists the active peers.`),
  RECORDING_NOT_FOUND: define('EARSHOT_RECORDING_NOT_FOUND', 404, 'Unknown recording',
    (name: string) => `No recording "${name}". GET /recordings lists them.`),
  RECORDING_NAME_INVALID: define('EARSHOT_RECORDING_NAME_INVALID', 400, 'Invalid recording name',
    (name: string) => `Recording name "${name}" is not allowed: use 1–128 letters, digits, ".", "_" or "-", not starting with "." (optionally ending in .wav); no paths.`),
  RECORDING_ACTIVE: define('EARSHOT_RECORDING_ACTIVE', 409, 'Recording already running',
    (peer: string, file: string) => `Peer "${peer}" is already recording to ${file}. Stop it first with DELETE /peers/${peer}/recording.`),
  RECORDING_NOT_ACTIVE: define('EARSHOT_RECORDING_NOT_ACTIVE', 409, 'No recording running',
    (peer: string) => `Peer "${peer}" is not recording. Start with POST /peers/${peer}/recording.`),
  RECORDING_EXISTS: define('EARSHOT_RECORDING_EXISTS', 409, 'Recording file exists',
    (name: string) => `A recording named "${name}" already exists; choose another name.`),
  RANGE_NOT_SATISFIABLE: define('EARSHOT_RANGE_NOT_SATISFIABLE', 416, 'Range not satisfiable',
    (size: number, range: string) => `The file has ${size} bytes; the requested range "${range}" starts beyond it.`),
  RECORDINGS_DIR_UNWRITABLE: define('EARSHOT_RECORDINGS_DIR_UNWRITABLE', 500, 'Recordings directory not writable',
    (dir: string, why: string) => `Cannot write recordings to "${dir}": ${why}. Create the directory or pass --recordings DIR.`),
  RECORDING_WRITE_FAILED: define('EARSHOT_RECORDING_WRITE_FAILED', 500, 'Recording write failed',
    (file: string, why: string) => `Writing ${file} failed: ${why}`),
  UNAUTHORIZED: define('EARSHOT_UNAUTHORIZED', 401, 'Unauthorized',
    () => 'This server needs a bearer token: send "Authorization: Bearer <token>" (the --token / EARSHOT_TOKEN value).'),
  TRICKLE_NOT_SUPPORTED: define('EARSHOT_TRICKLE_NOT_SUPPORTED', 405, 'Trickle ICE not supported',
    () => 'This WHIP server answers with all its candidates and does not accept PATCH (trickle ICE / ICE restart). Send a complete offer with POST instead.'),
  PIPELINE_INVALID: define('EARSHOT_PIPELINE_INVALID', 422, 'Invalid pipeline',
    (name: string, problems: Array<{ path: string; message: string }>) =>
      `Pipeline "${name}" has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n` +
      problems.map((p) => `  ${p.path || '/'}: ${p.message}`).join('\n'),
    (_name, problems) => ({ problems })),
  PIPELINE_NOT_FOUND: define('EARSHOT_PIPELINE_NOT_FOUND', 404, 'Unknown pipeline',
    (name: string, known: string[]) => `No pipeline "${name}"; loaded: ${known.join(', ') || 'none'}. GET /pipelines lists them; PUT /pipelines/${name} adds one.`),
  PIPELINE_IN_USE: define('EARSHOT_PIPELINE_IN_USE', 409, 'Pipeline in use',
    (name: string, by: string) => `Pipeline "${name}" is in use (${by}); end those sessions, rebind the rooms or choose another default first.`),
  PIPELINE_NAME_MISMATCH: define('EARSHOT_PIPELINE_NAME_MISMATCH', 400, 'Pipeline name mismatch',
    (where: string, name: string) => `${where} holds a pipeline named "${name}": a pipeline's "name" must match its file name and URL (${name}.json, /pipelines/${name}).`),
  PIPELINE_WRITE_FAILED: define('EARSHOT_PIPELINE_WRITE_FAILED', 500, 'Pipeline not saved',
    (file: string, why: string) => `Could not write ${file}: ${why}. Check that the pipelines directory is writable.`),
  PIPELINE_FILE_UNREADABLE: define('EARSHOT_PIPELINE_FILE_UNREADABLE', 400, 'Pipeline file unreadable',
    (file: string, why: string) => `Cannot read pipeline ${file}: ${why}`),
  BODY_INVALID: define('EARSHOT_BODY_INVALID', 400, 'Invalid request body',
    (why: string) => why),
  OVERLOADED: define('EARSHOT_OVERLOADED', 503, 'Server at capacity',
    (limit: number) => `The server already has its maximum of ${limit} sessions; retry later or raise --max-sessions.`),
  SHUTTING_DOWN: define('EARSHOT_SHUTTING_DOWN', 503, 'Server shutting down',
    () => 'The server is shutting down and accepts no new sessions.'),
  STAGE_MODULE_INVALID: define('EARSHOT_STAGE_MODULE_INVALID', 422, 'Worker stage module unusable',
    (module: string, why: string) => `Worker stage module ${module} cannot be used: ${why}. A stage module must be an ES module whose default export is { type, create } (or an array of them); see examples/dc-blocker-stage.js.`),
  PROCESSOR_INVALID: define('EARSHOT_PROCESSOR_INVALID', 400, 'Invalid processor',
    (name: string, why: string) => `Processor "${name}" cannot be registered: ${why}`),
  PROCESSOR_NOT_FOUND: define('EARSHOT_PROCESSOR_NOT_FOUND', 404, 'Unknown processor',
    (name: string, known: string[]) => `No processor "${name}" is registered${known.length ? `; registered: ${known.join(', ')}` : ' (none are)'}. Register it with registerProcessor(name, factory) before a stream uses it.`),
  INTERNAL: define('EARSHOT_INTERNAL', 500, 'Internal error',
    (why: string) => `Internal error: ${why}`),
} as const;

export function isEarshotError(e: unknown): e is EarshotError {
  return e instanceof EarshotError;
}
