import { setTimeout as sleep } from "node:timers/promises";
import { TaskTimeoutError } from "../errors.ts";
import type { RunningTaskContext } from "./running-task-context.ts";

/** An attempt still running this long after its signal aborted is reported as abandoned. */
const ABANDONED_NOTICE_MS = 1000;

/** An abandoned attempt still running; `report` warns about it, once. */
interface StrayAttempt {
  readonly task: string;
  readonly attempt: number;
  /** Set for an attempt whose process group Cairn is ending: SIGKILL this many ms after SIGTERM. */
  readonly killGraceMs: number | undefined;
  /** Whether that process group is gone by now (the attempt is then finishing, not its process running). */
  readonly groupGone: () => boolean;
  /** Resolves when its work ends, however. */
  settled: Promise<void>;
  /** Epoch ms after which it counts as ignoring its signal. */
  readonly noticeAt: number;
  report: (() => void) | undefined;
}

/**
 * The attempts of one flow run that did not stop at their signal. An attempt whose signal
 * aborted (timeout, or the flow stopped) is over for the scheduler at once: retries start,
 * the flow moves on. Its work may go on if the task ignores the signal: its context is closed
 * (what it logs or writes from then on goes nowhere), whatever it returns or throws later is
 * dropped, and if it is still running a moment later it is reported as abandoned, once.
 * Process tasks are ended by their executor (SIGTERM, then SIGKILL after killGraceMs): such an
 * attempt is reported as a process that did not exit on SIGTERM, with when it is killed, unless
 * its process group is gone by then (the attempt is still reading what its process printed or
 * left, which a process outside its group may hold open): then it is said so. The
 * task waits for it, after a timeout as when the flow stopped (run-task.ts), then records its
 * logs and closes its run, and the flow's end waits for that.
 */
export class AbandonedAttempts {
  private readonly stray = new Set<StrayAttempt>();

  constructor(private readonly warn: (task: string, message: string) => void) {}

  /** Gives up on attempt `attempt` of `task`, whose `work` may still be running. */
  abandon(task: string, attempt: number, work: Promise<unknown>, ctx: RunningTaskContext): void {
    ctx.close();
    const timeout = TaskTimeoutError.is(ctx.signal.reason);
    const { killGraceMs } = ctx;
    const groupGone = () => ctx.groupGone;
    const report = () => {
      stray.report = undefined;
      const message =
        killGraceMs === undefined
          ? abandonedMessage(task, attempt, timeout)
          : groupGone()
            ? finishingMessage(task, attempt, timeout)
            : endingMessage(task, attempt, timeout, killGraceMs);
      this.warn(task, message);
    };
    const gone = () => void this.stray.delete(stray);
    const stray: StrayAttempt = { task, attempt, killGraceMs, groupGone, settled: work.then(gone, gone), noticeAt: Date.now() + ABANDONED_NOTICE_MS, report };
    this.stray.add(stray);
    // A task that honours its signal settles within a moment: only the others are reported.
    void sleep(ABANDONED_NOTICE_MS, undefined, { ref: false }).then(() => {
      if (this.stray.has(stray)) stray.report?.();
    });
  }

  /**
   * Before the flow's last event: reports the abandoned attempts not reported yet that are still
   * running once their moment to stop has passed (at most {@link ABANDONED_NOTICE_MS} from now).
   */
  async report(): Promise<void> {
    const unreported = [...this.stray].filter((s) => s.report);
    if (!unreported.length) return;
    const last = Math.max(...unreported.map((s) => s.noticeAt)) - Date.now();
    if (last > 0) await Promise.race([Promise.all(unreported.map((s) => s.settled)), sleep(last)]);
    for (const stray of unreported) if (this.stray.has(stray)) stray.report?.();
  }

  /**
   * The abandoned attempts that have not ended yet; `killGraceMs` is set for one whose process
   * group is being ended (within that grace; the flow's end waits for it).
   */
  list(): Array<{ task: string; attempt: number; killGraceMs?: number }> {
    return [...this.stray].map(({ task, attempt, killGraceMs, groupGone }) => ({ task, attempt, ...(killGraceMs !== undefined && !groupGone() ? { killGraceMs } : {}) }));
  }
}

/** A function task that went on after its signal: nothing can stop it but the task itself. */
function abandonedMessage(task: string, attempt: number, timeout: boolean): string {
  return (
    `Attempt ${attempt} of task "${task}" did not stop ${timeout ? "at its timeout" : "when the flow stopped"}: abandoned. ` +
    `The flow does not wait for it, and what it returns, throws, logs as metrics or writes as artifacts from now on is dropped. ` +
    `Pass ctx.signal to what the task awaits so that it stops.`
  );
}

/**
 * A process task whose process has exited (by itself or at its SIGTERM) and whose group is gone,
 * while its attempt is still reading what it printed (a process it started outside its group, such
 * as `setsid daemon &`, holds its stdout or stderr open) or left (its outputs): no process of it is
 * running, and none is killed.
 */
function finishingMessage(task: string, attempt: number, timeout: boolean): string {
  return (
    `Attempt ${attempt} of task "${task}" had not finished ${timeout ? "at the task's timeout" : "when the flow stopped"}, though its process has exited and its process group is gone: ` +
    `Cairn is still reading what the process printed or left (a process it started outside its group may still hold its stdout or stderr open). ` +
    (timeout ? `What the attempt returns from now on is dropped; the task's retry, if any, starts once it is done. ` : "") +
    `The flow waits for it, then records its logs and its run.`
  );
}

/** A process task whose process group Cairn is ending: it is killed at the end of its grace. */
function endingMessage(task: string, attempt: number, timeout: boolean, killGraceMs: number): string {
  const head = `Attempt ${attempt} of task "${task}": its process did not exit on SIGTERM ${timeout ? "at the task's timeout" : "when the flow stopped"}; it is killed (SIGKILL) after ${killGraceMs} ms (killGraceMs)`;
  return timeout
    ? `${head} unless it exits before. The task's retry, if any, starts once it is gone; what it writes to its outputs from now on is dropped. The flow waits for it, then records its logs and its run.`
    : `${head} unless it exits before. The flow waits for it, then records its logs and its run.`;
}
