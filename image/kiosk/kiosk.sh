#!/bin/sh
# Exam-room panel in a Chromium kiosk: full screen, no browser UI, nothing kept on disk.
#
# Started by scribe-kiosk.service (a systemd *user* unit of the kiosk login) once the
# graphical session is up. It waits for the panel (the daemon may still be loading its
# models), then replaces itself with Chromium. Settings come from the environment:
#   KIOSK_URL           panel address            (default http://127.0.0.1:8080/)
#   KIOSK_CHROMIUM      browser binary           (default /usr/bin/chromium)
#   KIOSK_WAIT_S        seconds to wait for it   (default 120; Chromium then shows its own error and retries)
#   KIOSK_EXTRA_FLAGS   more Chromium flags      (e.g. --force-device-scale-factor=1.25)
set -eu

URL="${KIOSK_URL:-http://127.0.0.1:8080/}"
CHROMIUM="${KIOSK_CHROMIUM:-/usr/bin/chromium}"
WAIT_S="${KIOSK_WAIT_S:-120}"
# The profile lives in RAM (XDG_RUNTIME_DIR is a tmpfs) and starts empty each time.
PROFILE="${XDG_RUNTIME_DIR:-/tmp}/scribe-kiosk-profile"

i=0
until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "${URL%/}/status" \
        >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -ge "$WAIT_S" ]; then
        echo "kiosk: panel at $URL not answering after ${WAIT_S}s; starting the browser anyway" >&2
        break
    fi
    sleep 1
done

rm -rf "$PROFILE"
mkdir -p -m 0700 "$PROFILE"

# shellcheck disable=SC2086  # KIOSK_EXTRA_FLAGS is a list of flags on purpose
exec "$CHROMIUM" \
    --kiosk --incognito --user-data-dir="$PROFILE" \
    --no-first-run --no-default-browser-check --noerrdialogs --disable-infobars \
    --disable-session-crashed-bubble --disable-translate \
    --disable-features=Translate,TranslateUI,OverscrollHistoryNavigation,MediaRouter \
    --overscroll-history-navigation=0 --disable-pinch \
    --disable-background-networking --disable-sync --disable-component-update \
    --check-for-update-interval=31536000 --password-store=basic --disk-cache-size=1 \
    --ozone-platform-hint=auto --touch-events=enabled \
    ${KIOSK_EXTRA_FLAGS:-} \
    "$URL"
