/**
 * Who ran a flow, as MLflow's tag `mlflow.user` says it. MLflow's own client asks Python's
 * `getpass.getuser()`, which reads LOGNAME, USER, LNAME and USERNAME before the password database:
 * a run of Cairn and one of `mlflow run` by the same person carry the same name. The password
 * database alone says `root` under `sudo -E` or a container's default user, and has no entry for a
 * uid given with `docker run --user 12345` or by OpenShift, where USER is often the one name set.
 */
import { userInfo } from "node:os";

/** The variables `getpass.getuser()` reads, in its order: the first one set and not empty names the user. */
export const USER_VARIABLES = ["LOGNAME", "USER", "LNAME", "USERNAME"] as const;

/**
 * The user's name as `getpass.getuser()` finds it, from `env` (the run's environment): the first of
 * {@link USER_VARIABLES} set, else the password database's entry of the process's uid, else
 * `"unknown"` (MLflow's word for a user it cannot name).
 *
 * @example userName({ USER: "alice" }) // "alice", whatever the uid
 */
export function userName(env: NodeJS.ProcessEnv): string {
  for (const name of USER_VARIABLES) {
    const value = env[name];
    if (value) return value;
  }
  try {
    return userInfo().username;
  } catch {
    // A uid with no passwd entry (a container's `--user 12345`): userInfo() throws.
    return "unknown";
  }
}
