/**
 * Which process owns something (a lease, a run), and whether that process is gone. Everything
 * Cairn leaves on disk or on a server while it works names its owner so, and a later process
 * that finds it can tell a live owner from a killed one: single-flight leases are taken over at
 * once instead of at their expiry, and runs left RUNNING by a `kill -9` are closed as KILLED.
 *
 * An owner is `host:pid:t<start>:s<space>:w<started>:m<machine>`. `start` is the process's start
 * time in clock ticks since boot (`/proc/<pid>/stat`, Linux); it tells the owner from a later
 * process that got the same pid. `space` names which pids its pid is one of: a digest of the
 * machine's boot id and the process's PID namespace. Containers that share the host's name
 * (Docker's `--network host`, Kubernetes' `hostNetwork`) and a project folder each count pids of
 * their own, so a pid of another space says nothing about the process that has that pid here.
 * `started` (the start on the wall clock) and `machine` (a digest of `/etc/machine-id`) tell an
 * earlier boot of this machine from another machine that has this name (containers given one
 * `--hostname`, cloned VMs all named `ubuntu`): only the first is over. Where there is no `/proc`
 * the start and space are left out and a reused pid looks alive, which only means waiting as if
 * the owner were alive. Owners of another host, of another PID namespace of this boot, or of
 * another boot id that cannot be an earlier boot of this machine are never judged gone: nothing
 * here can tell.
 */
import { createHash } from "node:crypto";
import { readFileSync, readlinkSync } from "node:fs";
import { hostname, uptime } from "node:os";

/** A process, as recorded in what it owns. */
export interface ProcessOwner {
  host: string;
  pid: number;
  /** Start time in clock ticks since boot, where the system tells it. */
  start?: number;
  /**
   * Which pids `pid` is one of: 6 hex digits of a digest of the boot id, then 6 of the boot id
   * and the PID namespace (`/proc/sys/kernel/random/boot_id`, `/proc/self/ns/pid`), where the
   * system tells them.
   */
  space?: string;
  /**
   * When the process started, in seconds since the epoch by its machine's clock, where the
   * system tells its space: a process of an earlier boot of this machine started before this boot.
   */
  startedAt?: number;
  /** 6 hex digits of a digest of its machine's `/etc/machine-id`, where the system tells it (never the id itself). */
  machine?: string;
}

/**
 * How far the clocks that wrote an owner and that judge it may be apart (two machines; or one
 * whose clock was set at boot): an owner that started within this of this machine's boot is not
 * taken for one of an earlier boot.
 */
const CLOCK_SKEW_MS = 60_000;

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

/**
 * This process's pid space (see {@link ProcessOwner.space}), or undefined where /proc cannot tell:
 * also when the /proc mounted is another PID namespace's (`/proc/self` is not our pid), whose
 * process files would describe other processes than the pids we count.
 */
function pidSpace(): string | undefined {
  try {
    if (readlinkSync("/proc/self") !== String(process.pid)) return undefined;
    const namespace = readlinkSync("/proc/self/ns/pid");
    const boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    const digest = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 6);
    return `${digest(boot)}${digest(`${boot} ${namespace}`)}`;
  } catch {
    return undefined;
  }
}

/** This machine's {@link ProcessOwner.machine}, or undefined where no machine id can be read. */
function machineDigest(): string | undefined {
  for (const file of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    try {
      const id = readFileSync(file, "utf8").trim();
      // Salted, so that the digest is no stand-in for the id in other programs' records.
      if (id) return createHash("sha256").update(`cairn machine ${id}`).digest("hex").slice(0, 6);
    } catch {
      // the next file, or none
    }
  }
  return undefined;
}

let self: ProcessOwner | undefined;

/** This process. */
export function currentOwner(): ProcessOwner {
  if (self?.pid === process.pid) return self;
  const space = pidSpace();
  // Without its space, /proc may describe other pids than ours: its start time would be another process's.
  const start = space !== undefined ? processStartTime("self") : undefined;
  // Read only where the space is: they judge an owner of another boot, which only a space tells.
  const startedAt = space !== undefined ? Math.floor(Date.now() / 1000 - process.uptime()) : undefined;
  const machine = space !== undefined ? machineDigest() : undefined;
  return (self = {
    host: hostname(),
    pid: process.pid,
    ...(start !== undefined ? { start } : {}),
    ...(space !== undefined ? { space } : {}),
    ...(startedAt !== undefined ? { startedAt } : {}),
    ...(machine !== undefined ? { machine } : {}),
  });
}

/** `host:pid:t<start>:s<space>:w<startedAt>:m<machine>` (the parts the system does not tell left out). */
export function formatOwner(owner: ProcessOwner = currentOwner()): string {
  const parts = [owner.host, owner.pid];
  if (owner.start !== undefined) parts.push(`t${owner.start}`);
  if (owner.space !== undefined) parts.push(`s${owner.space}`);
  if (owner.startedAt !== undefined) parts.push(`w${owner.startedAt}`);
  if (owner.machine !== undefined) parts.push(`m${owner.machine}`);
  return parts.join(":");
}

/**
 * Reads what {@link formatOwner} wrote, also in its older forms without a start time, space,
 * wall-clock start or machine (extra `:`-separated parts after it are ignored); undefined for
 * anything else.
 */
export function parseOwner(text: unknown): ProcessOwner | undefined {
  if (typeof text !== "string") return undefined;
  const [host, pid, ...rest] = text.split(":");
  const n = Number(pid);
  if (!host || !pid || !/^\d+$/.test(pid) || !Number.isSafeInteger(n) || n <= 0) return undefined;
  const part = (pattern: RegExp) => (rest[0] !== undefined && pattern.test(rest[0]) ? rest.shift()!.slice(1) : undefined);
  const t = part(/^t\d+$/);
  const space = part(/^s[0-9a-f]{12}$/);
  const startedAt = part(/^w\d{1,15}$/);
  const machine = part(/^m[0-9a-f]{6}$/);
  return {
    host,
    pid: n,
    ...(t !== undefined ? { start: Number(t) } : {}),
    ...(space !== undefined ? { space } : {}),
    ...(startedAt !== undefined ? { startedAt: Number(startedAt) } : {}),
    ...(machine !== undefined ? { machine } : {}),
  };
}

/**
 * True when `owner`'s pid counts the processes this one sees: same host, and the same boot and
 * PID namespace, or an owner recorded without its space (older Cairn, no /proc) on this host,
 * judged as before. False for another container's process that shares the host's name.
 */
function inThisPidSpace(owner: ProcessOwner): boolean {
  return owner.host === hostname() && (owner.space === undefined || owner.space === currentOwner().space);
}

/** What a record tells of its owner besides the owner itself. */
export interface OwnerRecordTimes {
  /**
   * The last time the record shows its owner at work, in epoch ms: a lease's last renewal, a
   * run's start. An owner seen at work after this machine booted is no process of an earlier boot.
   */
  seenAt?: number;
}

/**
 * True when an owner of another boot id under this host name can only be a process of an
 * earlier boot of this machine, so over: its machine id (where both sides tell it) is this
 * machine's, and it started, and its record last shows it at work, before this machine booted
 * ({@link CLOCK_SKEW_MS} apart). Another machine of this name (a container given one
 * `--hostname`, a cloned VM) has another machine id, or started after this boot. An owner
 * recorded without its wall-clock start (older Cairn) whose record tells no time cannot be told.
 */
function ofEarlierBoot(owner: ProcessOwner, times: OwnerRecordTimes): boolean {
  const machine = currentOwner().machine;
  if (owner.machine !== undefined && machine !== undefined && owner.machine !== machine) return false;
  // NaN (a damaged record) compares false: not gone.
  const lastSeen = Math.max(owner.startedAt !== undefined ? owner.startedAt * 1000 : -Infinity, times.seenAt ?? -Infinity);
  if (lastSeen === -Infinity) return false;
  return lastSeen < Date.now() - uptime() * 1000 - CLOCK_SKEW_MS;
}

/**
 * True when `owner` is a process of this machine that no longer exists: no process has its
 * pid, the one that has it started at another time (the pid was reused), or it has ended and
 * waits only for its parent to reap it (a zombie, state Z or X in /proc: a `kill -9`'d process
 * whose parent does not wait for it), or it is of an earlier boot of this machine (another boot
 * id, the same machine id, and it started and was last seen before this boot; `times` tells
 * what its record says). False for this process, for another host's processes, for another PID
 * namespace's (see {@link ProcessOwner.space}), for another machine's that shares this host
 * name, and whenever it cannot be told.
 */
export function ownerIsGone(owner: ProcessOwner | undefined, times: OwnerRecordTimes = {}): boolean {
  if (!owner || owner.host !== hostname() || owner.pid === process.pid) return false;
  const here = currentOwner().space;
  // An owner that knew its pid space, judged from a process that cannot tell its own (a /proc of
  // another PID namespace mounted here): its pids are not ours to look up.
  if (owner.space !== undefined && here === undefined) return false;
  if (owner.space !== undefined && here !== undefined && owner.space !== here) {
    // Another PID namespace of this boot (a container with the host's name): nothing here can
    // tell. Another boot id: over if it was an earlier boot of this machine, else another machine.
    return owner.space.slice(0, 6) !== here.slice(0, 6) && ofEarlierBoot(owner, times);
  }
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

/**
 * True when `owner` is provably another process of this machine that still runs: the same
 * host, boot and PID namespace, and its pid held by a live process (not a zombie) that started
 * when it did. False for this process, and whenever it cannot be told: another host or pid
 * space, no /proc, an owner recorded without its start time or space.
 */
export function ownerIsAlive(owner: ProcessOwner | undefined): boolean {
  if (!owner || owner.start === undefined || owner.space === undefined) return false;
  if (!inThisPidSpace(owner) || owner.pid === process.pid) return false;
  const stat = procStat(owner.pid);
  if (stat === undefined || stat[0] === "Z" || stat[0] === "X") return false;
  return Number(stat[19]) === owner.start;
}
