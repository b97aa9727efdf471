/** IPC between the primary and its workers. */
export type PrimaryMessage = { type: 'shutdown'; deadlineMs: number } | { type: 'reopen-logs' };
export type WorkerMessage = { type: 'listen-error'; message: string };
