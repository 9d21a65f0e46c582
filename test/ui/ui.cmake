# The web management UI in headless Chromium (test/ui/test_ui.py): logs
# in, creates a queue, publishes, watches the rate, gets the message,
# deletes the queue and visits every page, with screenshots of each in
# build*/test-output/ui/. Label `ui`: ctest -L ui.
#
# Needs Debian's chromium, chromium-driver and python3-selenium (.ci/deps
# installs them). Registered even when they are missing, so that the test
# fails instead of silently not running.
if(NOT TARGET warren)
  return()
endif()

set(UI_OUTPUT_DIR ${CMAKE_BINARY_DIR}/test-output/ui)
add_test(NAME ui.browser
         COMMAND /usr/bin/python3 -m pytest -q -x -p no:cacheprovider
                 ${CMAKE_CURRENT_SOURCE_DIR}/ui/test_ui.py
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ui)
set_tests_properties(ui.browser PROPERTIES
  ENVIRONMENT "WARREN_BIN=$<TARGET_FILE:warren>;WARREN_TEST_BROKER=;PYTHONDONTWRITEBYTECODE=1;WARREN_UI_OUTPUT=${UI_OUTPUT_DIR}"
  TIMEOUT 300
  LABELS ui)
