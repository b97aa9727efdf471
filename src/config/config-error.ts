/** A bad flag or setting: the CLI prints its one-line message and exits 2. */
export class ConfigError extends Error {}
