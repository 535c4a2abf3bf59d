// Package browsertest drives the web console of a real 3-node Strata
// cluster with headless Chromium (chromedp). It is a module of its own so
// that the main module does not depend on chromedp; it imports nothing of
// Strata: it runs the strata binary (STRATA_BIN, or one it builds from the
// main module) and talks to it by its CLI and HTTP.
//
// Chromium comes from Debian's chromium package (make tools installs it);
// CHROMIUM names another binary. Without one the tests skip, except under
// CI=true, where they fail. STRATA_SCREENSHOTS=dir saves screenshots of the
// main pages there (the README's come from this).
package browsertest
