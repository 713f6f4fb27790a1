// The part of madge's API the architecture test uses (madge ships no types).
declare module "madge" {
  interface MadgeResult {
    /** Each cycle as the list of files in it. */
    circular(): string[][];
    /** Each file and the files it imports. */
    obj(): Record<string, string[]>;
  }
  interface MadgeConfig {
    fileExtensions?: string[];
    tsConfig?: string;
    excludeRegExp?: RegExp[];
  }
  export default function madge(path: string | string[], config?: MadgeConfig): Promise<MadgeResult>;
}
