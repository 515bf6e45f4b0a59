# Install rules and the CMake package `pmpd` (README.md, "Install and use as a library"):
#   bin/                         the command-line tools
#   lib/                         the layer libraries (static)
#   include/pmpd/<layer>/...     their headers: with include/pmpd on the include path a user writes
#                                #include "inference/load_engine.h" as the tree does
#   lib/cmake/pmpd/              pmpdConfig.cmake, its version file and the exported targets
#                                pmpd::<layer> (pmpd::engine, pmpd::scheduler_runtime, ...)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PMPD_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/pmpd)
set(PMPD_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/pmpd)

# A layer library that other projects may link: headers from the source root here and from
# include/pmpd once installed, C++17 for its users, installed and exported as pmpd::<name> (the
# target's name without "pmpd_"; the same alias exists in this build).
function(pmpd_install_library target)
  string(REGEX REPLACE "^pmpd_" "" name ${target})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
                                              $<INSTALL_INTERFACE:${PMPD_INSTALL_INCLUDEDIR}>)
  target_compile_features(${target} PUBLIC cxx_std_17)
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  add_library(pmpd::${name} ALIAS ${target})
  install(TARGETS ${target} EXPORT pmpdTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endfunction()

# The calling layer folder's headers (*.h, *.cuh, subfolders included) under include/pmpd/<folder>.
function(pmpd_install_headers)
  file(RELATIVE_PATH layer ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ DESTINATION ${PMPD_INSTALL_INCLUDEDIR}/${layer}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh")
endfunction()

# The package files; call once, after every pmpd_install_library.
function(pmpd_install_package)
  install(EXPORT pmpdTargets NAMESPACE pmpd:: DESTINATION ${PMPD_INSTALL_CMAKEDIR})
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pmpdConfig.cmake.in
                                ${PROJECT_BINARY_DIR}/pmpdConfig.cmake
                                INSTALL_DESTINATION ${PMPD_INSTALL_CMAKEDIR})
  # 0.x: a minor version may break the API, a patch may not.
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/pmpdConfigVersion.cmake
                                   VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/pmpdConfig.cmake ${PROJECT_BINARY_DIR}/pmpdConfigVersion.cmake
          DESTINATION ${PMPD_INSTALL_CMAKEDIR})
endfunction()
