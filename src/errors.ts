/**
 * Every error earshot reports has a stable `code` (`EARSHOT_…`), an HTTP status
 * and a message that says what to change. Like fastify's
 * `FST_ERR_…`, each code has its own constructor and is never reused for a
 * different meaning. HTTP responses carry them as RFC 9457 problem details.
 *
 * @module
 */

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  /** The error's `code`: one of `EarshotErrorCode`, or another server's relayed by the WHIP client. */
  code: string;
  detail: string;
  instance?: string;
  /** Extra, error-specific members (e.g. the list of validation problems). */
  [extension: string]: unknown;
}

export class EarshotError extends Error {
  // string, not the literal: a subclass (WhipRequestError) names itself.
  override readonly name: string = 'EarshotError';
  constructor(
    /**
     * Stable machine-readable code, e.g. `EARSHOT_SDP_INVALID`: one of
     * `EarshotErrorCode`, or, from `WhipRequestError`, a code another WHIP
     * server answered with (typed so that editors offer earshot's codes).
     */
    readonly code: EarshotErrorCode | (string & {}),
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

/** How a limit shared out among engine processes is worded: the machine's figure, and that it is split. */
function sharedOut(engines: number | undefined): string {
  return engines !== undefined && engines > 1 ? ` (shared out among its ${engines} engine processes)` : '';
}

/**
 * How a per-client limit held by each engine process is worded: an engine counts only the client's
 * sessions it holds, so the machine's figure is reached at one engine, and a client may hold up to
 * N × ceil(limit / N) on the machine (the limit itself where N divides it).
 */
function perEngineShare(limit: number, engines: number | undefined): string {
  if (engines === undefined || engines <= 1) return '';
  const share = Math.ceil(limit / engines);
  return ` (shared out among its ${engines} engine processes: ${share} from one client at each, up to ${share * engines} on the machine)`;
}

/** Builds one kind of error; `code` and `statusCode` say which, without building one. */
export type ErrorFactory<A extends unknown[], C extends string = string> = ((...args: A) => EarshotError) & { readonly code: C; readonly statusCode: number };

function define<const C extends string, A extends unknown[]>(
  code: C,
  statusCode: number,
  title: string,
  message: (...args: A) => string,
  extensions?: (...args: A) => Record<string, unknown>,
): ErrorFactory<A, C> {
  const factory = (...args: A) => new EarshotError(code, statusCode, title, message(...args), extensions?.(...args));
  return Object.assign(factory, { code, statusCode });
}

/**
 * A factory whose error may carry another status of its class than the catalog's
 * (`EARSHOT_BAD_REQUEST` keeps the 4xx status fastify chose): `factory.withStatus(status, …args)`.
 */
function withStatus<A extends unknown[], C extends string>(factory: ErrorFactory<A, C>): ErrorFactory<A, C> & { withStatus(status: number, ...args: A): EarshotError } {
  return Object.assign(factory, {
    withStatus(status: number, ...args: A) {
      const e = factory(...args);
      return new EarshotError(e.code, status, e.title, e.message, e.extensions);
    },
  });
}

/** What `EARSHOT_WAV_UNREADABLE` advises unless the reason comes with advice of its own. */
const WAV_ADVICE = 'Give a WAV file of PCM, float, A-law, µ-law or mono IMA ADPCM audio (convert others, e.g. `sox in.mp3 out.wav`).';

export const errors = {
  UNSUPPORTED_MEDIA_TYPE: define('EARSHOT_UNSUPPORTED_MEDIA_TYPE', 415, 'Unsupported media type',
    (got: string | undefined, want: string) => `Content-Type must be ${want}, got ${got ? `"${got}"` : 'none'}`),
  SDP_INVALID: define('EARSHOT_SDP_INVALID', 400, 'Invalid SDP offer',
    (why: string) => `The body is not a usable SDP offer: ${why}`),
  SDP_TOO_COMPLEX: define('EARSHOT_SDP_TOO_COMPLEX', 400, 'SDP offer too complex',
    (sections: number, limit: number) => `The offer has ${sections} media sections (m= lines); earshot accepts at most ${limit} per offer and receives one Opus audio section (the others are answered as rejected). Offer fewer sections.`),
  NO_OPUS_AUDIO: define('EARSHOT_NO_OPUS_AUDIO', 422, 'No Opus audio in offer',
    (why: string, listener?: boolean) =>
      listener
        ? `The offer has no audio section earshot can send to: ${why}. A listener (WHEP) offers an audio m-line with opus/48000/2 and direction recvonly or sendrecv (RFC 7587).`
        : `The offer has no audio section earshot can receive: ${why}. Offer an audio m-line with opus/48000/2 and direction sendonly or sendrecv (RFC 7587).`),
  NEGOTIATION_FAILED: define('EARSHOT_NEGOTIATION_FAILED', 422, 'WebRTC negotiation failed',
    (why: string) => `The offer could not be answered: ${why}`),
  // A DELETE whose If-Match names another entity tag than the session's (RFC 9110 §13.1.1): nothing is ended.
  PRECONDITION_FAILED: define('EARSHOT_PRECONDITION_FAILED', 412, 'Precondition failed',
    (ifMatch: string, etag: string) => `If-Match ${ifMatch.slice(0, 200)} does not match this resource's entity tag ${etag} (the one its POST answered with), so nothing was changed. Send its ETag, or no If-Match.`),
  SESSION_NOT_FOUND: define('EARSHOT_SESSION_NOT_FOUND', 404, 'Unknown WHIP session',
    (id: string) => `No WHIP session "${id}": it has ended or never existed. Start a new one with POST /whip/:room/:peer.`),
  LISTENER_NOT_FOUND: define('EARSHOT_LISTENER_NOT_FOUND', 404, 'Unknown WHEP listener',
    (id: string, peer: string) => `No WHEP listener "${id}" of peer "${peer}": it has ended (its DELETE, its peer's stream ended) or never existed. Start a new one with POST /whep/:peer.`),
  PEER_NOT_FOUND: define('EARSHOT_PEER_NOT_FOUND', 404, 'Unknown peer',
    /**
     * `live`: the route needs the peer's stream; `known`: its statistics, kept a while after it ends.
     * `listedBy`: what lists the peers, for a caller without HTTP (a WebRTCHandler's method).
     */
    (peer: string, scope: 'live' | 'known' = 'live', listedBy?: string) =>
      scope === 'live'
        ? `No live peer "${peer}": it has ended or never connected. ${listedBy ?? 'GET /stats lists the peers, live and recently ended.'}`
        : `No peer "${peer}", live or recently ended. ${listedBy ?? 'GET /stats lists the peers.'}`),
  RECORDING_NOT_FOUND: define('EARSHOT_RECORDING_NOT_FOUND', 404, 'Unknown recording',
    /** `asked`: the name as given, when the suffix was added to it (`x` → `x.wav`). */
    (name: string, asked?: string) =>
      asked !== undefined && asked !== name
        ? `No recording "${asked}": looked for "${name}" (a name without .wav or .opus is a WAV recording's). GET /recordings lists them.`
        : `No recording "${name}". GET /recordings lists them.`),
  RECORDING_NAME_INVALID: define('EARSHOT_RECORDING_NAME_INVALID', 400, 'Invalid recording name',
    (name: string, why: string) => `Recording name "${name}" is not allowed: ${why}`),
  RECORDING_ACTIVE: define('EARSHOT_RECORDING_ACTIVE', 409, 'Recording already running',
    (peer: string, file: string) => `Peer "${peer}" is already recording to ${file}. Stop it first: DELETE /peers/${peer}/recording over HTTP or stopAudioRecording() on a WebRTCHandler.`),
  RECORDING_NOT_ACTIVE: define('EARSHOT_RECORDING_NOT_ACTIVE', 409, 'No recording running',
    (peer: string) => `Peer "${peer}" is not recording. Start it with POST /peers/${peer}/recording over HTTP or startAudioRecording() on a WebRTCHandler.`),
  RECORDING_EXISTS: define('EARSHOT_RECORDING_EXISTS', 409, 'Recording file exists',
    (name: string, fileInTheWay?: string) =>
      fileInTheWay === undefined
        ? `A recording named "${name}" already exists; choose another name.`
        : `The recording name "${name}" cannot be used: "${fileInTheWay}" is a recording, not a directory; choose another name.`),
  RANGE_NOT_SATISFIABLE: define('EARSHOT_RANGE_NOT_SATISFIABLE', 416, 'Range not satisfiable',
    (size: number, range: string) => `The file has ${size} bytes; the requested range "${range}" starts beyond it.`),
  RECORDINGS_DIR_UNWRITABLE: define('EARSHOT_RECORDINGS_DIR_UNWRITABLE', 500, 'Recordings directory not writable',
    (dir: string, why: string) => `Cannot write recordings to "${dir}": ${why}${storageHint(why)}`),
  RECORDING_UNAVAILABLE: define('EARSHOT_RECORDING_UNAVAILABLE', 507, 'Recording unavailable',
    (pipeline: string, why: string) => `Pipeline "${pipeline}" requires recording (a record sink with "required": true), and recording is not possible now, so the session was not started. ${why}`),
  RECORDING_WRITE_FAILED: define('EARSHOT_RECORDING_WRITE_FAILED', 500, 'Recording write failed',
    (file: string, why: string) => `Writing ${file} failed: ${why}${/^E[A-Z]+/.test(why) ? storageHint(why) : ''}`),
  UNAUTHORIZED: define('EARSHOT_UNAUTHORIZED', 401, 'Unauthorized',
    (role: 'publish' | 'admin' = 'publish', presented: boolean = false) => {
      const needs = role === 'publish'
        ? 'send "Authorization: Bearer <token>" with the --token / EARSHOT_TOKEN value (the admin token works too)'
        : 'send "Authorization: Bearer <token>" with the --admin-token / EARSHOT_ADMIN_TOKEN value';
      if (presented) return `The bearer token sent is not accepted here: ${needs}.`;
      return role === 'publish' ? `Publishing needs a bearer token: ${needs}.` : `This route needs the admin token: ${needs}.`;
    }),
  DOWNLOAD_LINK_EXPIRED: define('EARSHOT_DOWNLOAD_LINK_EXPIRED', 401, 'Download link expired',
    (at: string) => `This download link expired at ${at}. List the recordings again (GET /recordings, or reload the dashboard) for a fresh link, or send the admin token.`),
  DOWNLOAD_LINK_INVALID: define('EARSHOT_DOWNLOAD_LINK_INVALID', 401, 'Download link not valid',
    () => 'This download link does not open this recording: it was altered, or made by a server process that has since restarted (links die with it). List the recordings again (GET /recordings, or reload the dashboard) for a fresh link, or send the admin token.'),
  FORBIDDEN: define('EARSHOT_FORBIDDEN', 403, 'Forbidden',
    (role: 'publish' | 'admin') => `Your token does not grant the ${role} role this route needs${role === 'admin' ? ': the publish token (--token) only allows WHIP; use the admin token (--admin-token)' : ''}.`),
  HOST_NOT_ALLOWED: define('EARSHOT_HOST_NOT_ALLOWED', 403, 'Host not allowed',
    (host: string) => `This server has no token for this route, so it only answers requests addressed to localhost / 127.0.0.1 / [::1], not "${host}". Set --admin-token (and --token) to serve other names, or --insecure if a trusted proxy fronts it.`),
  PROXY_NOT_ALLOWED: define('EARSHOT_PROXY_NOT_ALLOWED', 403, 'Proxied request not allowed',
    (header: string, role: 'publish' | 'admin') => `This request came through a proxy (it carries ${header}), and this server has no ${role} token, so it answers that role only to clients on its own machine, not through a proxy. Set ${role === 'admin' ? '--admin-token' : '--token'} (clients then send it through the proxy), or --insecure if the proxy authenticates every request by itself.`,
    (header) => ({ header })),
  CROSS_SITE_NOT_ALLOWED: define('EARSHOT_CROSS_SITE_NOT_ALLOWED', 403, 'Request from another site not allowed',
    (from: string) => `This request came from another site's page (${from}), and this server has no admin token, so it answers the admin API only to its own pages and to programs on its machine. Set --admin-token (pages then need it), or --cors-origin to let that page's origin call the admin API.`),
  PEER_ACTIVE: define('EARSHOT_PEER_ACTIVE', 409, 'Peer already publishing',
    (peer: string) => `Peer "${peer}" is already publishing. Only a request with publish rights proven by a token (or the admin token) may replace a live peer: end your old session with DELETE on its session URL, wait for it to time out, or configure --token.`),
  PEER_BUSY: define('EARSHOT_PEER_BUSY', 409, 'Peer being placed',
    (peer: string) => `Another request for peer "${peer}" is being answered right now; retry in a moment.`),
  TOO_MANY_DOWNLOADS: define('EARSHOT_TOO_MANY_DOWNLOADS', 429, 'Too many downloads',
    (limit: number, scope: string) => `At most ${limit} downloads may run at once ${scope}; wait for one to finish.`),
  TOO_MANY_EVENT_STREAMS: define('EARSHOT_TOO_MANY_EVENT_STREAMS', 429, 'Too many event streams',
    (limit: number, scope: string) => `At most ${limit} event streams (GET /events) may be open at once ${scope}; close one (another dashboard tab, a forgotten tool) and retry, or raise ${scope === 'from one address' ? '--max-event-streams-per-client' : '--max-event-streams'}.`,
    (limit) => ({ limit })),
  INSECURE_BIND: define('EARSHOT_INSECURE_BIND', 500, 'Refusing to expose an open API',
    (host: string) => `Refusing to listen on ${host} without an admin token: anyone who reaches it could read recordings and statistics, listen to live peers, start and stop recordings, change pipelines and room bindings, and in a cluster drain the node, which ends its sessions. Set --admin-token / EARSHOT_ADMIN_TOKEN (and --token for publishers; one value may serve both), bind 127.0.0.1, or pass --insecure if something in front of earshot already protects it.`),
  // Configuration errors: raised by createServer before anything listens (500 if one ever reaches an HTTP client).
  OPTION_INVALID: define('EARSHOT_OPTION_INVALID', 500, 'Invalid option',
    /** `subject`: what the message is about, when not a member of an options object the caller wrote (a stage operator's chain). */
    (option: string, problem: string, subject?: string) => `${subject ?? `options${option ? `.${option}` : ''}`} ${problem}`,
    (option) => ({ option })),
  // `listen()` (createServer, createCluster, `earshot serve`): the address is taken, by another earshot or any program.
  PORT_IN_USE: define('EARSHOT_PORT_IN_USE', 500, 'Port in use',
    (host: string, port: number) => `Cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: another process already listens there (another earshot, or any other program). Stop it, or choose another port: --port / PORT (port in code).`,
    (host, port) => ({ host, port })),
  // `listen()`: anything else that keeps the server from listening (an address not on this machine, a name that does not resolve, a port below 1024 without the privilege, a server already listening or closed).
  LISTEN_FAILED: define('EARSHOT_LISTEN_FAILED', 500, 'Cannot listen',
    (host: string, port: number, why: string) => `Cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${why}`,
    (host, port) => ({ host, port })),
  TLS_INVALID: define('EARSHOT_TLS_INVALID', 500, 'TLS configuration unusable',
    (why: string) => `Cannot serve HTTPS: ${why}`),
  ICE_SERVER_INVALID: define('EARSHOT_ICE_SERVER_INVALID', 500, 'ICE server unusable',
    (where: string, why: string) => `${where}: ${why}. An ICE server is stun:HOST[:PORT] or stuns:HOST[:PORT] (RFC 7064), or turn:/turns:HOST[:PORT][?transport=udp|tcp] with a username and credential (RFC 7065).`,
    // The option it came from, as OPTION_INVALID names one (`--ice-server` and EARSHOT_ICE_SERVERS fill the same option).
    () => ({ option: 'iceServers' })),
  METHOD_NOT_ALLOWED: define('EARSHOT_METHOD_NOT_ALLOWED', 405, 'Method not allowed',
    (method: string, allowed: string) => `${method.slice(0, 16)} is not a method of this resource; it allows ${allowed} (see the Allow header).`),
  TRICKLE_NOT_SUPPORTED: define('EARSHOT_TRICKLE_NOT_SUPPORTED', 501, 'Trickle ICE not supported',
    () => 'This server answers WHIP and WHEP offers with all its candidates and does not accept PATCH (trickle ICE / ICE restart). Send a complete offer with POST instead.'),
  PIPELINE_INVALID: define('EARSHOT_PIPELINE_INVALID', 422, 'Invalid pipeline',
    (name: string, problems: Array<{ path: string; message: string }>) =>
      `Pipeline "${name}" has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n` +
      problems.map((p) => `  ${p.path || '/'}: ${p.message}`).join('\n'),
    (_name, problems) => ({ problems })),
  PIPELINE_NOT_FOUND: define('EARSHOT_PIPELINE_NOT_FOUND', 404, 'Unknown pipeline',
    /** `adding`: how one is added where the name was asked (default: over HTTP). */
    (name: string, known: string[], adding: string = `GET /pipelines lists them; PUT /pipelines/${name} adds one.`) => `No pipeline "${name}"; loaded: ${known.join(', ') || 'none'}. ${adding}`),
  PIPELINE_IN_USE: define('EARSHOT_PIPELINE_IN_USE', 409, 'Pipeline in use',
    (name: string, by: string) => `Pipeline "${name}" is in use (${by}); end those sessions, rebind the rooms or choose another default first.`),
  PIPELINES_READ_ONLY: define('EARSHOT_PIPELINES_READ_ONLY', 409, 'Pipelines are read-only',
    (dir: string) =>
      `This server runs the bundled pipelines (${dir}), which belong to the installed package: a change there would be lost on its next install. ` +
      'Start the server with --pipelines DIR (pipelinesDir in code), a directory of your own (copy the bundled files there to start from them), to add, replace or delete pipelines over HTTP.'),
  PIPELINE_NAME_MISMATCH: define('EARSHOT_PIPELINE_NAME_MISMATCH', 400, 'Pipeline name mismatch',
    (where: string, name: string) => `${where} holds a pipeline named "${name}": a pipeline's "name" must match its file name and URL (${name}.json, /pipelines/${name}).`),
  PIPELINE_WRITE_FAILED: define('EARSHOT_PIPELINE_WRITE_FAILED', 500, 'Pipeline not saved',
    (file: string, why: string) => `Could not write ${file}: ${why}. Check that the pipelines directory is writable.`),
  ROOM_BINDINGS_INVALID: define('EARSHOT_ROOM_BINDINGS_INVALID', 500, 'Room bindings file invalid',
    /** `why` finishes the sentence "The room bindings file F …". */
    (file: string, why: string) => `The room bindings file ${file} ${why}. Fix or remove it: until then a server does not start, and a running one keeps its room bindings as they are and refuses changes to them.`),
  ROOM_BINDINGS_WRITE_FAILED: define('EARSHOT_ROOM_BINDINGS_WRITE_FAILED', 500, 'Room binding not saved',
    (file: string, why: string) => `Could not write ${file}: ${why}. Check that the pipelines directory is writable; the binding was not changed.`),
  PIPELINE_FILE_UNREADABLE: define('EARSHOT_PIPELINE_FILE_UNREADABLE', 400, 'Pipeline file unreadable',
    /** `directory`: `file` is the pipelines directory, which cannot be read. */
    (file: string, why: string, directory?: boolean) =>
      directory
        ? `Cannot read the pipelines directory ${file}: ${why}. Give --pipelines (pipelinesDir) a directory of pipeline files, or leave it out for the bundled pipelines.`
        : `Cannot read pipeline ${file}: ${why}.`),
  BODY_INVALID: define('EARSHOT_BODY_INVALID', 400, 'Invalid request body or query parameter',
    (why: string) => why),
  BODY_TOO_LARGE: define('EARSHOT_BODY_TOO_LARGE', 413, 'Request body too large',
    () => 'The request body exceeds the limit: 64 KiB for SDP; for JSON 16 KiB, 256 KiB for a pipeline document, 4 KiB for a room binding.'),
  /** Any other malformed request fastify refused; carries fastify's 4xx status (400 when it gave none). */
  BAD_REQUEST: withStatus(define('EARSHOT_BAD_REQUEST', 400, 'Bad request',
    (why: string) => why)),
  ROUTE_NOT_FOUND: define('EARSHOT_ROUTE_NOT_FOUND', 404, 'Not found',
    (method: string, path: string) => `No route ${method} ${path}. The routes are listed in the HTTP API reference: docs/http-api.md in the earshot repository (https://github.com/earshot-dev/earshot).`),
  NAME_INVALID: define('EARSHOT_NAME_INVALID', 400, 'Invalid name',
    (kind: 'room' | 'peer', value: string) => `The ${kind} "${value.slice(0, 80)}" is not allowed: use 1–64 letters, digits, "_", "." or "-", starting with a letter or digit${kind === 'room' ? ' ("sessions" is taken by the WHIP session URLs)' : ''}.`),
  // `engines`: the machine's limit is shared out among that many engine processes (serve --processes).
  OVERLOADED: define('EARSHOT_OVERLOADED', 503, 'Server at capacity',
    (limit: number | string[], what: 'sessions' | 'pending' | 'load' = 'sessions', engines?: number) => what === 'sessions'
      ? `The server already has its maximum of ${limit} sessions${sharedOut(engines)}; retry later or raise --max-sessions.`
      : what === 'pending'
        ? `The server already has ${limit} sessions that have not connected yet${sharedOut(engines)}; retry later or raise --max-pending-sessions.`
        : `The server is at its measured capacity (${(Array.isArray(limit) ? limit : [String(limit)]).join('; ')}): a new stream would degrade the ones running. Retry later, or add threads or servers.`,
    (limit, what = 'sessions', _engines?: number) => (what === 'load' ? {} : { limit, of: what })),
  // Its own code, not EARSHOT_OVERLOADED: the server has room, this one client does not (metrics and logs tell them apart).
  TOO_MANY_PENDING: define('EARSHOT_TOO_MANY_PENDING', 503, 'Too many pending sessions from this client',
    (limit: number, engines?: number) => `This client address already has its maximum of ${limit} pending sessions${perEngineShare(limit, engines)} (answered, not yet connected: each holds server sockets until it connects or the connect timeout passes); let them connect or end them (DELETE) and retry, or raise --max-pending-sessions-per-client (a gateway publishing many peers from one address needs more).`,
    (limit, _engines?: number) => ({ limit })),
  // werift gathered no candidate: every port of the media port range holds a session or listener (or no address could be bound).
  NO_MEDIA_PORT: define('EARSHOT_NO_MEDIA_PORT', 503, 'No media port free',
    () => 'The server could not open a UDP socket for this session\'s media: every port of its media port range (--ice-ports, icePortRange) is held by a session or a listener, one each. Retry later; or widen the range, which should hold at least --max-sessions plus --max-listeners ports.'),
  SHUTTING_DOWN: define('EARSHOT_SHUTTING_DOWN', 503, 'Server shutting down',
    /** `why`: what was refused, for a call other than a new session's (registerProcessor() after close()). */
    (why?: string) => (why === undefined ? 'The server is shutting down and accepts no new sessions.' : `Shutting down or closed: ${why}.`)),
  // `earshot serve --processes N` (src/cluster/): the front found no engine process to take the request.
  ENGINE_UNAVAILABLE: define('EARSHOT_ENGINE_UNAVAILABLE', 503, 'Engine unavailable',
    (why: string) => `No engine process can take this request now: ${why}. An engine that exits is restarted within seconds; retry then.`),
  // `earshot serve --processes N`: a recording whose engine process died before finalizing it (its `code`; never an HTTP response).
  ENGINE_EXITED: define('EARSHOT_ENGINE_EXITED', 500, 'Engine process exited',
    (engine: number, how: string, format: 'wav' | 'ogg-opus' = 'wav') =>
      `Engine process ${engine}, which ran this session, exited (${how}) before the recording was finalized. The file holds all the audio that had reached the disk (${format === 'wav' ? 'its header was rewritten to cover it' : 'up to its last complete page, which players read to'}); what the engine still held in memory, up to about a second, was lost with it.`),
  // `earshot serve --cluster` (src/cluster/): placing a new session needs Redis (peer locks, node loads); sessions already running go on.
  // `why`: Redis unreachable, its database missing, or this node's id held by another live node.
  CLUSTER_UNAVAILABLE: define('EARSHOT_CLUSTER_UNAVAILABLE', 503, 'Cluster state unavailable',
    (why: string, refused = 'place a new session without risking a peer running twice') => `This node cannot use the cluster's shared state in Redis (${why}), so it cannot ${refused}. Sessions already running go on; retry shortly (GET /health says why the node is out of the cluster).`),
  NODE_NOT_FOUND: define('EARSHOT_NODE_NOT_FOUND', 404, 'Unknown cluster node',
    (node: string) => `No live cluster node "${node.slice(0, 100)}" is registered; GET /cluster/nodes lists them.`),
  STAGE_MODULE_INVALID: define('EARSHOT_STAGE_MODULE_INVALID', 422, 'Worker stage module unusable',
    (module: string, why: string) => `Worker stage module ${module} cannot be used: ${why}. A stage module must be an ES module whose default export is a stage definition, { type, create } (or an array of them; defineStage() from earshot types one), where create(options, inputFormat) returns the stage: see "Custom worker stages" in docs/pipelines.md of earshot's repository.`),
  // Worker faults end one stream (session end reason `pipeline-error`); 500 if one ever reaches an HTTP client.
  STAGE_TIMEOUT: define('EARSHOT_STAGE_TIMEOUT', 500, 'Worker stage hung',
    /** `seen`: what the watchdog measured (the time without progress, and how much of it the thread had a CPU). */
    (stage: string, stream: string, limitMs: number, seen?: string) =>
      `${stage} of pool stream ${stream} made no progress for ${limitMs} ms (the stage timeout: --stage-timeout / stageTimeoutMs, a WorkerPool's taskTimeoutMs): its worker was replaced and the stream ended; the worker's other streams went on. Make the stage return sooner, or raise the stage timeout if it is legitimately slow.${seen ? ` The watchdog saw ${seen}.` : ''}`,
    (stage, stream, limitMs, _seen) => ({ stage, stream, limitMs })),
  STAGE_FAILED: define('EARSHOT_STAGE_FAILED', 500, 'Worker stage failed',
    (chain: string, why: string) => `${chain}: ${why}`,
    (chain) => ({ chain })),
  STAGE_CRASHED: define('EARSHOT_STAGE_CRASHED', 500, 'Worker stage crashed its worker',
    (stage: string, stream: string, crashes: number, why: string) => `${stage} of pool stream ${stream} crashed its worker ${crashes} times (last: ${why}); stream quarantined (maxStreamCrashes ${crashes}) instead of rebuilt again. Fix the stage: it must not exit the process or crash its thread.`,
    (stage, stream, crashes) => ({ stage, stream, crashes })),
  PROCESSOR_INVALID: define('EARSHOT_PROCESSOR_INVALID', 400, 'Invalid processor',
    (name: string, why: string) => `Processor "${name}" cannot be registered: ${why}`),
  PROCESSOR_NOT_FOUND: define('EARSHOT_PROCESSOR_NOT_FOUND', 404, 'Unknown processor',
    (name: string, known: string[]) => `No processor "${name}" is registered${known.length ? `; registered: ${known.join(', ')}` : ' (none are)'}. Register it with registerProcessor(name, factory) before a stream uses it.`),
  // A `websocket` sink's header names an environment variable the server does not have: the stream is refused before it starts.
  SINK_ENV_MISSING: define('EARSHOT_SINK_ENV_MISSING', 500, 'Sink configuration incomplete',
    (pipeline: string, path: string, variable: string) => `Pipeline "${pipeline}" ${path} uses \${${variable}}, but the environment variable ${variable} is not set in the earshot process, so the stream was not started. Set ${variable} where earshot runs, or change the pipeline.`,
    (_pipeline, path, variable) => ({ path, variable })),
  SINK_ENV_NOT_ALLOWED: define('EARSHOT_SINK_ENV_NOT_ALLOWED', 500, 'Sink configuration not allowed',
    (pipeline: string, path: string, variable: string) => `Pipeline "${pipeline}" ${path} uses \${${variable}}, which sink headers may not read, so the stream was not started: earshot fills in only variables named EARSHOT_SINK_… and those listed in EARSHOT_SINK_ENV (earshot serve --sink-env ${variable}).`,
    (_pipeline, path, variable) => ({ path, variable })),
  // Listening (WHEP): the peer's pipeline has no such branch, or the peer already has its most listeners.
  BRANCH_NOT_FOUND: define('EARSHOT_BRANCH_NOT_FOUND', 404, 'Unknown branch',
    (peer: string, branch: string, known: string[]) => `The pipeline of peer "${peer}" has no branch "${branch}"; its branches: ${known.join(', ')}.`,
    (_peer, branch, known) => ({ branch, branches: known })),
  LISTENERS_FULL: define('EARSHOT_LISTENERS_FULL', 503, 'Too many listeners',
    /** `machine`: the server is an engine process of `serve --processes`, and `limit` its share of the machine's (given for the server's limit only). */
    (scope: string, limit: number, machine?: { engines: number; limit: number }) => machine
      ? `The engine process that runs this peer already has ${limit} listeners, its share of the server's ${machine.limit} (--max-listeners, shared out among its ${machine.engines} engine processes: a peer's listeners are on its engine); retry later, end a listener, or raise --max-listeners.`
      : `${scope} already has its maximum of ${limit} listeners; retry later, end a listener, or raise ${scope === 'The server' ? '--max-listeners (maxListeners)' : '--max-listeners-per-peer (maxListenersPerPeer)'}.`,
    (_scope, limit, machine?: { engines: number; limit: number }) => (machine ? { limit: machine.limit, engineShare: limit } : { limit })),
  // Listening to a branch (WHEP, encoded audio): Opus codes 8, 12, 16, 24 and 48 kHz only.
  BRANCH_NOT_ENCODABLE: define('EARSHOT_BRANCH_NOT_ENCODABLE', 422, 'Branch cannot be encoded to Opus',
    (branch: string, why: string) => `Branch "${branch}" cannot be encoded to Opus: ${why}. Listen to another branch, or resample this one to 16000, 24000 or 48000 Hz.`,
    (branch) => ({ branch })),
  // `sendAudio` / `earshot send` (src/client/): the input file.
  WAV_UNREADABLE: define('EARSHOT_WAV_UNREADABLE', 400, 'Unreadable WAV file',
    /** `advice`: what to do, instead of the default (WAV_ADVICE); '' for none (`why` says it). */
    (file: string, why: string, advice?: string) => `Cannot use ${file}: ${why}.${(advice ?? WAV_ADVICE) ? ` ${advice ?? WAV_ADVICE}` : ''}`),
  // The file was usable when opened, but reading its audio failed later: it was truncated or replaced while being sent, or
  // the disk failed. What had been sent stays sent; the send stops with this error and its session is ended.
  WAV_READ_FAILED: define('EARSHOT_WAV_READ_FAILED', 500, 'WAV file read failed',
    (file: string, seconds: number, why: string) => `Reading ${file} failed ${seconds.toFixed(2)} s into its audio: ${why}. Keep the file in place and whole while it is sent.`),
  // The WHIP exchange of `sendAudio` / `earshot send` (src/client/whip-client.ts), thrown as a `WhipRequestError`
  // whose `status` is the server's (0 when none answered). Never an HTTP response of earshot's; 502 (a server
  // upstream failed) if one is ever relayed.
  WHIP_UNREACHABLE: define('EARSHOT_WHIP_UNREACHABLE', 502, 'WHIP endpoint unreachable',
    (url: string, why: string) => `WHIP endpoint ${url} did not answer: ${why}`),
  WHIP_NO_LOCATION: define('EARSHOT_WHIP_NO_LOCATION', 502, 'WHIP answer without session URL',
    (url: string, why = 'without a Location header') => `WHIP endpoint ${url} answered 201 ${why}`),
  // A redirect the client cannot follow: 303, none or a bad Location, too many hops, or the token would go in clear text to another host.
  WHIP_REDIRECT: define('EARSHOT_WHIP_REDIRECT', 502, 'WHIP redirect not followed',
    (url: string, status: number, why: string) => `WHIP endpoint ${url} redirected (${status}) ${why}. Nothing was published.`),
  // The caller's AbortSignal (Ctrl-C, SIGTERM for `earshot send`) fired before media flowed. Never an HTTP response.
  SEND_ABORTED: define('EARSHOT_SEND_ABORTED', 499, 'Send aborted',
    /** `session`: what became of the server's session: none was made yet, one may have been (the offer was out, no answer read), it was ended with DELETE, or left (`skipDelete`, or the caller's own signaling). */
    (step: string, session: 'none' | 'maybe' | 'ended' | 'left' = 'ended') =>
      `Stopped ${step}, before any audio was sent; ${
        session === 'none'
          ? 'no session had been created'
          : session === 'maybe'
            ? 'if the server had created a session already, it ends it when no media arrives'
            : session === 'ended'
              ? 'the session the server had created was ended (DELETE)'
              : 'the session the server had created was not deleted (skipDelete, or signaling of your own)'
      }.`),
  WHIP_SESSION_LOST: define('EARSHOT_WHIP_SESSION_LOST', 502, 'WHIP session lost',
    (session: string, why: string, noticedAtEnd?: boolean) =>
      `${why}: ${session} has ended on the server (deleted by another client, replaced, drained, or the server stopped or restarted). ${noticedAtEnd ? 'What was sent after it ended was not received.' : 'Sending stopped.'}`),
  WHIP_ANSWER_INVALID: define('EARSHOT_WHIP_ANSWER_INVALID', 502, 'Unusable SDP answer',
    (from: string, why: string) => `The answer from ${from} is not a usable SDP answer: ${why}. Nothing was sent.`),
  WEBRTC_CONNECT_FAILED: define('EARSHOT_WEBRTC_CONNECT_FAILED', 504, 'WebRTC did not connect',
    (why: string) => `${why}; check that UDP reaches the server (ICE host candidates, firewalls, --ice-host / hostAddresses).`),
  WHIP_HTTP: define('EARSHOT_WHIP_HTTP', 502, 'WHIP request refused',
    (url: string, status: string, detail: string) => `${status} from ${url}${detail ? `: ${detail}` : ''}`),
  INTERNAL: define('EARSHOT_INTERNAL', 500, 'Internal error',
    (why: string) => `Internal error: ${why}`),
} as const;

/** Where recordings go, as the CLI and the library each say it; a recording started with a path of its own goes there. */
const ELSEWHERE = 'the server\'s --recordings DIR or recordingsDir, a record sink\'s "directory", or the path a recording is started with';

/**
 * What to do about a failed write to the recordings directory, by errno: the
 * hint must match the cause ("create the directory" is no help on a full disk).
 */
function storageHint(why: string): string {
  const code = /^E[A-Z]+/.exec(why)?.[0];
  switch (code) {
    case 'ENOSPC':
      return ` — the disk is full. Free space on that file system, or record to another (${ELSEWHERE}).`;
    case 'EDQUOT':
      return ' — the disk quota is used up. Free space or raise the quota of the user earshot runs as.';
    case 'EACCES':
    case 'EPERM':
      return ` — the directory is not writable by the user earshot runs as. Fix its permissions, or record elsewhere (${ELSEWHERE}).`;
    case 'EFBIG':
      return ` — the file system cannot hold a file this large (FAT32: 4 GiB). Record to another file system (${ELSEWHERE}), or record "ogg-opus", ~20 times smaller.`;
    case 'EROFS':
      return ` — the file system is read-only. Record to a writable one (${ELSEWHERE}).`;
    case 'ENOENT':
      return ` — the directory does not exist. Create it, or record elsewhere (${ELSEWHERE}).`;
    case 'ENOTDIR':
    case 'EEXIST':
      return ` — the path (or part of it) is a file, not a directory. Remove the file, or record elsewhere (${ELSEWHERE}).`;
    case 'EMFILE':
    case 'ENFILE':
      return ' — too many open files. Raise the open-file limit (ulimit -n) or lower --max-sessions.';
    case 'EIO':
      return ' — the disk reported an I/O error. Check the device.';
    default:
      return `. Check the directory, or record elsewhere (${ELSEWHERE}).`;
  }
}

/**
 * Every code earshot's own errors carry (`errors.X.code`), as a union of
 * literals: a `switch (e.code)` gets them offered, and a misspelt one in a
 * comparison with `errors.X.code` does not compile.
 */
export type EarshotErrorCode = (typeof errors)[keyof typeof errors]['code'];

export function isEarshotError(e: unknown): e is EarshotError {
  return e instanceof EarshotError;
}
