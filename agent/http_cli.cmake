# The SRE CLI over the HTTP API (`dbwarden events|sessions|audit verify --api`); included from
# agent/CMakeLists.txt, guarded against being defined twice.
if(NOT TARGET dbw_http_cli)
  add_library(dbw_http_cli STATIC ${CMAKE_CURRENT_LIST_DIR}/http_cli.cc)
  target_include_directories(dbw_http_cli PUBLIC ${CMAKE_CURRENT_LIST_DIR}/.. PRIVATE ${RAPIDJSON_INCLUDE_DIRS})
  target_link_libraries(dbw_http_cli PUBLIC dbw_common
                        PRIVATE dbw_api Boost::headers OpenSSL::SSL simdjson::simdjson)
endif()
