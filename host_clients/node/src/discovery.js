import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";

export const ENV_VAR = "DIFFUSION_SIDECAR";
export const DEFAULT_COMMAND = "diffusion-sidecar";

/** No sidecar executable was found; `tried` lists every place looked at, in order. */
export class SidecarNotFoundError extends Error {
  constructor(tried) {
    super(
      `diffusion-sidecar was not found. Tried: ${tried.join("; ")}. Pass { command } to startSidecar(), ` +
        `set ${ENV_VAR} to the executable's path, or put ${DEFAULT_COMMAND} on PATH.`,
    );
    this.name = "SidecarNotFoundError";
    this.code = "SIDECAR_NOT_FOUND";
    this.tried = tried;
  }
}

function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(name, env) {
  const extensions = process.platform === "win32" ? (env.PATHEXT ?? ".EXE;.CMD;.BAT").split(";") : [""];
  for (const folder of (env.PATH ?? "").split(path.delimiter).filter(Boolean)) {
    for (const extension of extensions) {
      const candidate = path.join(folder, name + extension);
      if (executable(candidate)) return candidate;
    }
  }
  return null;
}

/**
 * The sidecar to spawn when the host names none, looked up in `env`: `DIFFUSION_SIDECAR` (the
 * executable's path, or a name looked up on PATH; when set it must name one, and nothing else is
 * tried), else `diffusion-sidecar` on PATH. Throws SidecarNotFoundError naming what it tried.
 */
export function findSidecar(env = process.env) {
  const explicit = env[ENV_VAR];
  if (explicit) {
    const found = explicit.includes("/") || explicit.includes(path.sep) ? explicit : onPath(explicit, env);
    if (found !== null && executable(found)) return path.resolve(found);
    throw new SidecarNotFoundError([`${ENV_VAR}=${explicit} (not an executable file)`]);
  }
  const found = onPath(DEFAULT_COMMAND, env);
  if (found !== null) return found;
  throw new SidecarNotFoundError([`${ENV_VAR} (not set)`, `${DEFAULT_COMMAND} on PATH (${env.PATH ?? ""})`]);
}
