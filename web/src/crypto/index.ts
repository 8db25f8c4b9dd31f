// The browser's crypto layer: a port of the Python `taube.crypto` package
// (plus the code/envelope parts of client/linking.py and client/sas.py),
// wire-compatible with it in both directions. Call `initOlm()` once first.
export * from "./errors";
export * from "./base64";
export * from "./canonical";
export * from "./keys";
export * from "./olm";
export * from "./payload";
export * from "./replay";
export * from "./megolm";
export * from "./keyshare";
export * from "./attachments";
export * from "./statekey";
export * from "./backup";
export * from "./verification";
export * from "./linking";
