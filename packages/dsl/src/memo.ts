/** `map`'s value for `key`, made by `make` the first time it is asked for (undefined too is kept: asked once). */
export function memo<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  if (!map.has(key)) map.set(key, make());
  return map.get(key)!;
}
