/**
 * Which process owns something (a lease, a run), and whether that process is gone. Everything
 * Cairn leaves on disk or on a server while it works names its owner so, and a later process
 * that finds it can tell a live owner from a killed one: single-flight leases are taken over at
 * once instead of at their expiry, and runs left RUNNING by a `kill -9` are closed as KILLED.
 *
 * An owner is `host:pid:t<start>`, where `start` is the process's start time in clock ticks
 * since boot (`/proc/<pid>/stat`, Linux); it tells the owner from a later process that got the
 * same pid. Where there is no `/proc` the start is left out and a reused pid looks alive, which
 * only means waiting as if the owner were alive. Owners of another host are never judged gone:
 * nothing on this machine can tell.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";

/** A process, as recorded in what it owns. */
export interface ProcessOwner {
  host: string;
  pid: number;
  /** Start time in clock ticks since boot, where the system tells it. */
  start?: number;
}

/** The fields of `/proc/<pid>/stat` after the command name (the first is field 3, the state), or undefined where /proc cannot tell. */
function procStat(pid: number | "self"): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ")".
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** The start time of process `pid` (clock ticks since boot), or undefined where /proc cannot tell. */
export function processStartTime(pid: number | "self"): number | undefined {
  const start = Number(procStat(pid)?.[19]); // field 22 of the whole line
  return Number.isSafeInteger(start) ? start : undefined;
}

let self: ProcessOwner | undefined;

/** This process. */
export function currentOwner(): ProcessOwner {
  if (self?.pid === process.pid) return self;
  const start = processStartTime("self");
  return (self = { host: hostname(), pid: process.pid, ...(start !== undefined ? { start } : {}) });
}

/** `host:pid:t<start>` (or `host:pid` without a start time). */
export function formatOwner(owner: ProcessOwner = currentOwner()): string {
  return `${owner.host}:${owner.pid}${owner.start !== undefined ? `:t${owner.start}` : ""}`;
}

/** Reads what {@link formatOwner} wrote (extra `:`-separated parts after it are ignored); undefined for anything else. */
export function parseOwner(text: unknown): ProcessOwner | undefined {
  if (typeof text !== "string") return undefined;
  const [host, pid, start] = text.split(":");
  const n = Number(pid);
  if (!host || !pid || !/^\d+$/.test(pid) || !Number.isSafeInteger(n) || n <= 0) return undefined;
  const t = start !== undefined && /^t\d+$/.test(start) ? Number(start.slice(1)) : undefined;
  return { host, pid: n, ...(t !== undefined ? { start: t } : {}) };
}

/**
 * True when `owner` is a process of this machine that no longer exists: no process has its
 * pid, the one that has it started at another time (the pid was reused), or it has ended and
 * waits only for its parent to reap it (a zombie, state Z or X in /proc: a `kill -9`'d process
 * whose parent does not wait for it). False for this process, for another host's processes,
 * and whenever it cannot be told.
 */
export function ownerIsGone(owner: ProcessOwner | undefined): boolean {
  if (!owner || owner.host !== hostname() || owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: it exists, as another user's process.
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
  // kill(pid, 0) succeeds on a zombie, whose start time is still its own.
  const stat = procStat(owner.pid);
  if (stat === undefined) return false;
  if (stat[0] === "Z" || stat[0] === "X") return true;
  if (owner.start === undefined) return false;
  const start = Number(stat[19]);
  return Number.isSafeInteger(start) && start !== owner.start;
}
