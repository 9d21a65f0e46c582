# warren_codec: AMQP 0-9-1 framing (frame.c) and the method / content
# property codec generated from the spec XML (amqp_methods.gen.c, made by
# gen/gen_amqp.py and committed; .ci/check-codegen keeps it in sync).
add_library(warren_codec STATIC frame.c amqp_methods.gen.c)
target_link_libraries(warren_codec PUBLIC warren_base)

# `cmake --build <dir> --target amqp_codegen` regenerates the codec in the
# source tree (needs python3 and Debian's amqp-specs).
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  add_custom_target(amqp_codegen
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/gen/gen_amqp.py
            -o ${CMAKE_CURRENT_SOURCE_DIR}
    COMMENT "Regenerating server/amqp_methods.gen.{h,c}"
    VERBATIM)
endif()
