# Tools of the harness (included by harness/CMakeLists.txt). Each is one main_*.cc linked
# against vmfuzz_harness.
#   vmfuzz-replay  replay text traces and binary inputs on the VM and the model; also
#                  --to-text and --encode (used by ci/vmfuzz minimize and the corpus seeds)
if(TARGET vmfuzz_harness)
  add_executable(vmfuzz-replay ${CMAKE_CURRENT_SOURCE_DIR}/main_replay.cc)
  target_link_libraries(vmfuzz-replay PRIVATE vmfuzz_harness)
  set_target_properties(vmfuzz-replay PROPERTIES OUTPUT_NAME vmfuzz-replay)
endif()
