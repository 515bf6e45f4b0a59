# InstallTest (tests/CMakeLists.txt): installs the build into a fresh prefix, builds this folder's
# project against it as a project outside the tree would (find_package(pmpd) through
# CMAKE_PREFIX_PATH only), runs it on stories260K and checks its output equals the installed
# pmpd-generate's for the same greedy request. Any failing step fails the test.
#
#   cmake -DBUILD_DIR=<pmpd build> -DWORK_DIR=<scratch> -DTORCH_PREFIX=<torch/share/cmake>
#         -DMODEL=<stories260K> -DGENERATOR=<generator> -DCXX_COMPILER=<c++> -P run_install_test.cmake
foreach(var BUILD_DIR WORK_DIR TORCH_PREFIX MODEL GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_install_test.cmake: -D${var}=... is required")
  endif()
endforeach()
if(DEFINED ENV{PMPD_SHARED_DIR})
  set(MODEL $ENV{PMPD_SHARED_DIR}/models/stories260K)
endif()
if(NOT EXISTS ${MODEL}/config.json)
  # CI sets PMPD_REQUIRE_SHARED_ASSETS=1: a missing asset fails there (tests/test_util.h).
  if("$ENV{PMPD_REQUIRE_SHARED_ASSETS}" STREQUAL "1")
    message(FATAL_ERROR "no model at ${MODEL} (PMPD_REQUIRE_SHARED_ASSETS=1)")
  endif()
  message("pmpd-install-test: skipped: no model at ${MODEL}")
  return()
endif()

set(prefix ${WORK_DIR}/prefix)
set(example_build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})
# What runs must find its libraries through its run paths, as on a user's machine.
unset(ENV{LD_LIBRARY_PATH})

# Runs a command; on failure prints its output and fails the test naming `step`.
function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${step} failed (${rc}):\n${ARGN}\n--- stdout\n${out}\n--- stderr\n${err}")
  endif()
  set(run_stdout "${out}" PARENT_SCOPE)
endfunction()

run("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
# Not through run(): its argument list would split the prefix list at the ';'.
execute_process(COMMAND ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR} -B ${example_build} -G ${GENERATOR}
                        -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
                        "-DCMAKE_PREFIX_PATH=${prefix};${TORCH_PREFIX}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the out-of-tree project failed (${rc}):\n--- stdout\n${out}\n--- stderr\n${err}")
endif()
# The package came from the prefix, not from the build tree.
file(STRINGS ${example_build}/CMakeCache.txt pmpd_dir REGEX "^pmpd_DIR:")
if(NOT pmpd_dir STREQUAL "pmpd_DIR:PATH=${prefix}/lib/cmake/pmpd")
  message(FATAL_ERROR "find_package(pmpd) did not take the installed package: ${pmpd_dir}")
endif()
run("building the out-of-tree project" ${CMAKE_COMMAND} --build ${example_build})

run("pmpd_install_example" ${example_build}/pmpd_install_example ${MODEL})
set(actual "${run_stdout}")
run("the installed pmpd-generate" ${prefix}/bin/pmpd-generate --model ${MODEL} --prompt "Once upon a time"
    --max-new-tokens 16 --color never)
set(expected "${run_stdout}")
if(NOT expected MATCHES "^Once upon a time.")
  message(FATAL_ERROR "pmpd-generate printed no continuation of the prompt:\n${expected}")
endif()
if(NOT actual STREQUAL expected)
  message(FATAL_ERROR "the installed package decodes differently from pmpd-generate:\n"
                      "--- pmpd_install_example\n${actual}--- pmpd-generate\n${expected}")
endif()
message("pmpd-install-test: ok: ${actual}")
