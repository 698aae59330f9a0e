# Run by cpack on the staged files before it makes the .deb
# (CPACK_PRE_BUILD_SCRIPTS), for what debhelper's dh_strip and dh_compress
# would do: static libraries lose their debug sections (the command and
# the Python module are stripped by CPACK_STRIP_FILES), man pages are
# gzipped.
file(GLOB_RECURSE archives "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*.a")
foreach(archive ${archives})
  execute_process(COMMAND ${CPACK_SHMLOG_STRIP} --strip-debug --enable-deterministic-archives ${archive}
                  COMMAND_ERROR_IS_FATAL ANY)
endforeach()
file(GLOB_RECURSE pages "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*.1")
foreach(page ${pages})
  execute_process(COMMAND gzip -9n ${page} COMMAND_ERROR_IS_FATAL ANY)
endforeach()
