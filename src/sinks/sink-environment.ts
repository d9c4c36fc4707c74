/**
 * Which environment variables a `websocket` sink's headers may name
 * (`${NAME}`). Pipelines can arrive over HTTP (`PUT /pipelines`), so the
 * holder of the admin token would otherwise read every variable of the
 * process (the tokens, cloud keys, a database URL) by sending it as a header
 * to a server of their choosing. Only variables meant for sinks are filled in:
 * names that begin with `EARSHOT_SINK_`, and those the operator lists in
 * `EARSHOT_SINK_ENV` (comma-separated; `earshot serve --sink-env` sets it).
 */

/** `${NAME}` in a header value. */
export const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Variables with this prefix may always be named. */
export const SINK_ENV_PREFIX = 'EARSHOT_SINK_';

/** The variable that lists other names sink headers may read. */
export const SINK_ENV_LIST = 'EARSHOT_SINK_ENV';

/** Names listed in `EARSHOT_SINK_ENV` of `env`. */
function listedSinkVariables(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[SINK_ENV_LIST] ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
}

/** Whether a sink header may name variable `name`. */
export function sinkVariableAllowed(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return (name.startsWith(SINK_ENV_PREFIX) && name.length > SINK_ENV_PREFIX.length) || listedSinkVariables(env).includes(name);
}

/** Variables `value` names (`${NAME}`), in order. */
export function namedVariables(value: string): string[] {
  return [...value.matchAll(ENV_REFERENCE)].map((m) => m[1]);
}

/** Why a sink header may not name `name`, as a pipeline problem's message says it. */
export function sinkVariableRefusal(name: string): string {
  return `\${${name}} is not a variable sink headers may read: name it ${SINK_ENV_PREFIX}…, or list it in ${SINK_ENV_LIST} (earshot serve --sink-env ${name})`;
}
