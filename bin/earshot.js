#!/usr/bin/env node
// The CLI runs from the compiled build (`npm install` runs `prepare` → `tsc`).
import '../dist/src/cli/main.js';
