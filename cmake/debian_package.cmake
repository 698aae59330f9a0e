# The Debian package, shmlog_VERSION_ARCH.deb: what `cmake --install`
# puts under the prefix /usr (the command, libraries, headers, CMake and
# pkg-config files, the Python module, man pages, systemd units, bash
# completion). `cpack -G DEB` in the build tree makes it (packaging/README.md).
#
# Its dependencies are named by dpkg-shlibdeps from the shared libraries
# the command and the Python module really link, so it is set up only
# where dpkg-shlibdeps is found (Debian's dpkg-dev).
find_program(SHMLOG_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(NOT SHMLOG_DPKG_SHLIBDEPS)
  message(STATUS "dpkg-shlibdeps not found: no Debian package (apt-get install dpkg-dev)")
  return()
endif()
set(SHMLOG_DEB_PACKAGE ON)

set(SHMLOG_PACKAGE_MAINTAINER "shmlog maintainers <maintainers@users.noreply.h-seed-9655d3ed.example>"
    CACHE STRING "The Debian package's Maintainer field")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME shmlog)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Shared-memory log for low-latency IPC between processes on one host")
set(CPACK_PACKAGE_DESCRIPTION "Producers and consumers in separate processes append to and read from
memory-mapped rings, with consumer groups, Kafka's delivery modes and
segment files for durability. This package has the shmlog command, the
C++ and C libraries (static) with their headers, CMake and pkg-config
files, and the Python module.")
# Installed with the prefix /usr into a staging DESTDIR, so that what is
# filled in while installing (the systemd units' ExecStart) names /usr.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_LIST_DIR}/debian_package_finish.cmake)
set(CPACK_SHMLOG_STRIP ${CMAKE_STRIP})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${SHMLOG_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Beside what dpkg-shlibdeps finds: an extension module does not link
# libpython, and it loads only in the Python it was built for.
if(SHMLOG_PYTHON_VERSION MATCHES "^([0-9]+)\\.([0-9]+)$")
  math(EXPR shmlog_python_next_minor "${CMAKE_MATCH_2} + 1")
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "python3 (>= ${SHMLOG_PYTHON_VERSION}~), python3 (<< ${CMAKE_MATCH_1}.${shmlog_python_next_minor})")
endif()
# Linking the static libraries needs the development files of what they
# use (their CMake and pkg-config files name -luring and -lhwloc); the
# command alone does not.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "liburing-dev, libhwloc-dev, pkg-config")
include(CPack)
