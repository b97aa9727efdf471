/**
 * RFC 9112 §9.6: once a response announces `close`, the server MUST NOT process further requests on that
 * connection. node:http still emits 'request' for pipelined requests it has already parsed, so the
 * connections we are closing are remembered here and the pipeline drops what arrives on them.
 */
import type { Socket } from 'node:net';

const closing = new WeakSet<Socket>();

export const markClosing = (socket: Socket): void => void closing.add(socket);
export const isClosing = (socket: Socket): boolean => closing.has(socket);
