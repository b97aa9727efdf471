#!/usr/bin/env node
// The compiled CLI lives in dist/; `npm run build` (run by `npm start`) produces it.
import '../dist/src/main/cli.js';
