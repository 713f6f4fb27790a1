/**
 * Values of environment variables copied from a `.env` file with their quotes
 * (`CAIRN_CACHE_URL="redis://..."`): a shell's `export $(cat .env)`, docker's `--env-file` and
 * systemd's `Environment=` keep the quotes as part of the value, which then reads as no URL or
 * number. The errors that refuse such a value say so, rather than echoing it back unexplained.
 */

/** Whether `raw` is wrapped in a pair of the same quotes, `"..."` or `'...'` (blanks around them aside). */
export function isQuoted(raw: string | undefined): boolean {
  const text = raw?.trim() ?? "";
  return text.length >= 2 && (text[0] === '"' || text[0] === "'") && text.at(-1) === text[0];
}

/**
 * The sentence that says `name`'s value holds its quotes, and how to fix it; "" when it does not.
 * @example quotesHint("CAIRN_LEASE_TTL_MS", '"5000"') // " Its value is in quotes, ..."
 */
export function quotesHint(name: string, raw: string | undefined): string {
  if (!isQuoted(raw)) return "";
  return (
    ` Its value is in quotes, which are part of it: a .env file's quotes are kept by \`export $(cat .env)\`, \`docker --env-file\` and systemd. ` +
    `Set ${name} without them.`
  );
}
