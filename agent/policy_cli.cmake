# `dbwarden policy check|eval` as a library; included from agent/CMakeLists.txt (and from
# tests/policy for its unit test), so it guards against being defined twice.
if(NOT TARGET dbw_policy_cli)
  add_library(dbw_policy_cli STATIC ${PROJECT_SOURCE_DIR}/agent/policy_cli.cc)
  target_include_directories(dbw_policy_cli PUBLIC ${PROJECT_SOURCE_DIR}
                             PRIVATE ${RAPIDJSON_INCLUDE_DIRS})
  target_link_libraries(dbw_policy_cli PUBLIC dbw_policy dbw_sql PRIVATE dbw_api simdjson::simdjson)
endif()
