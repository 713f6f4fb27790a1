/**
 * @cairn/cache — content hashing and the cache store of Cairn. Knows nothing
 * about flows: the scheduler computes a key, asks the store, and either
 * restores outputs or computes them under a lease.
 */

// Hashing
export { CACHE_SCHEMA_VERSION, describeCodeFolder, describePath, digestFile, digestFileSync, digestPath, hashValue, listFolder, privateDigest, privateDigestAsync, sha256 } from "./hash.ts";
export type { DescribeOptions, FolderListing, PathDescription } from "./hash.ts";
export { editedSince, readStamped, readStampedSync } from "./file-stamp.ts";
export type { ReadFile } from "./file-stamp.ts";
export { FILES_RECORDED, isLeftOut, isLeftOutName, LEFT_OUT_FILE, LEFT_OUT_FOLDERS, recordedFiles, VIRTUALENV_MARK } from "./code-folder.ts";

// Cache keys
export { computeCacheKey, DECLARATION_ENTRY, diffIngredients, ENV_READ_ENTRY, environmentChange, keyOfIngredients, kindRunEntry, packageEntry, packageOfEntry, replaceArtifacts, RECORDED_PACKAGES_MAX, RECORDED_VALUE_MAX_BYTES, SOURCE_CODE_ENTRY } from "./key.ts";
export type { ArtifactDigest, CacheKeyIngredients, CodeContents, CodeEnvironment, CacheKeyOptions, RecordedEnvironment, DiffOptions, IngredientChange, RecordedIngredients, RecordedInput } from "./key.ts";

// Entries and the store
export type { ArtifactRecord, CacheEntry, NewCacheEntry, OutputsManifest } from "./entry.ts";
export { cacheEntryProblem, completeEntry, earlierByTask, NEAREST_CANDIDATES, nearestEntry, parseCacheEntry } from "./entry.ts";
export { CacheStore } from "./store.ts";
export type { CacheEntrySummary, CacheStoreOptions, ExpiredEntry, ListOptions, PruneOptions, PruneResult } from "./store.ts";
export { EmbeddedKeyvStore } from "./backends/embedded-store.ts";
/** Small-file read shared with the embedded run store of @cairn/core (synchronous: see its comment). */
export { pathExists, privateTempDir, readSmallFile, writeFileAtomic } from "./backends/_files.ts";
export { hasUnencodedUserInfo, hiddenQueryTexts, redactUrl } from "./backends/_backend.ts";
export { isQuoted, quotesHint } from "./quoted-value.ts";
export { parseStoreUrl } from "./store-url.ts";
export type { ParsedStoreUrl, StoreScheme, UrlProblem } from "./store-url.ts";

// Process owners (leases, runs left RUNNING by a killed process)
export { currentOwner, formatOwner, ownerIsAlive, ownerIsGone, parseOwner, processStartTime } from "./process-owner.ts";
export type { OwnerRecordTimes, ProcessOwner } from "./process-owner.ts";

// Partial downloads (written beside their place, renamed there once whole)
export { partialPath, sweepDeadPartials } from "./partial-files.ts";

// Single-flight leases
export type { AcquireLeaseOptions, HeldLease, LeaseRefusal, LeaseResult, WaitForOptions } from "./lease.ts";

// Errors
export {
  CacheBackendError,
  CacheError,
  CairnError,
  CacheOptionError,
  CacheReadOnlyError,
  CacheStoreUrlError,
  CacheValueError,
  LeaseLostError,
} from "./errors.ts";
