# The Debian package test (test/pkg/test_deb.py, ctest pkg.deb, label
# pkg): builds the package from this tree with cpack, installs it into a
# scratch root with dpkg and checks it; see the test's docstring. Needs
# dpkg-dev (dpkg-deb, and dpkg-shlibdeps for the package's library
# Depends, which the test expects), fakeroot, man-db, systemd
# (systemd-analyze) and python3 with pytest: .ci/deps installs them.
if(NOT TARGET warren)
  return()
endif()
find_program(PKG_DPKG_DEB dpkg-deb)
find_program(PKG_FAKEROOT fakeroot)
find_program(PKG_DPKG_SHLIBDEPS dpkg-shlibdeps)
find_program(PKG_MAN man)
find_program(PKG_SYSTEMD_ANALYZE systemd-analyze)
if(NOT PKG_DPKG_DEB OR NOT PKG_FAKEROOT OR NOT PKG_DPKG_SHLIBDEPS OR
   NOT PKG_MAN OR NOT PKG_SYSTEMD_ANALYZE)
  message(WARNING "test/pkg skipped: needs dpkg-deb, dpkg-shlibdeps, "
                  "fakeroot, man and systemd-analyze (apt-get install "
                  "dpkg-dev fakeroot man-db systemd)")
  return()
endif()
add_test(NAME pkg.deb
         COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
                 ${CMAKE_CURRENT_SOURCE_DIR}/pkg/test_deb.py
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/pkg)
set(pkg_env
  "WARREN_BUILD_DIR=${CMAKE_BINARY_DIR}"
  "CPACK_COMMAND=${CMAKE_CPACK_COMMAND}"
  "WARREN_VERSION=${PROJECT_VERSION}"
  "WARREN_SBINDIR=${CMAKE_INSTALL_FULL_SBINDIR}"
  "WARREN_CONF_FILE=${WARREN_CONF_FILE}"
  "WARREN_MANDIR=${CMAKE_INSTALL_FULL_MANDIR}"
  "WARREN_UNIT_DIR=${WARREN_SYSTEMD_UNIT_DIR}"
  "WARREN_DOCDIR=${CMAKE_INSTALL_FULL_DOCDIR}"
  "WARREN_HAVE_SYSTEMD=${WARREN_HAVE_SYSTEMD}"
  "PYTHONDONTWRITEBYTECODE=1")
set_tests_properties(pkg.deb PROPERTIES
  ENVIRONMENT "${pkg_env}"
  TIMEOUT 600
  LABELS pkg)
