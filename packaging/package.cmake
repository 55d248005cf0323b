# The Debian package (`make package`, packaging/README.md): CPack's DEB generator over the
# install() rules, plus the files only a package ships (conffile, copyright, changelog).

# Files a source install (`cmake --install`) leaves alone: /etc/dbwarden/dbwarden.yaml must never
# be overwritten on a host, and /usr/share/doc/dbwarden is Debian's. They are in the component
# `deb`, which only CPack installs (CPACK_INSTALL_CMAKE_PROJECTS below).
set(DBW_PKG_SRC ${PROJECT_SOURCE_DIR}/packaging)
set(DBW_PKG_GEN ${PROJECT_BINARY_DIR}/packaging)

# The changelog's newest entry names the version being packaged: bumping project(VERSION) means
# writing an entry for it (lintian and apt read the version from both places).
file(STRINGS ${DBW_PKG_SRC}/changelog DBW_CHANGELOG_TOP LIMIT_COUNT 1)
if(NOT DBW_CHANGELOG_TOP MATCHES "^dbwarden \\(${PROJECT_VERSION}\\) ")
  message(FATAL_ERROR "packaging/changelog: the first entry must be for ${PROJECT_VERSION}, the "
                      "project's version; found: ${DBW_CHANGELOG_TOP}")
endif()

# gzip -n: no name or timestamp in the header, so the files are reproducible (lintian checks).
foreach(doc dbwarden.8 changelog)
  add_custom_command(OUTPUT ${DBW_PKG_GEN}/${doc}.gz
                     COMMAND ${CMAKE_COMMAND} -E make_directory ${DBW_PKG_GEN}
                     COMMAND sh -c "gzip -9nc \"$1\" > \"$2\"" sh ${DBW_PKG_SRC}/${doc}
                             ${DBW_PKG_GEN}/${doc}.gz
                     DEPENDS ${DBW_PKG_SRC}/${doc}
                     COMMENT "gzip packaging/${doc}"
                     VERBATIM)
endforeach()
add_custom_target(dbw_package_docs ALL
                  DEPENDS ${DBW_PKG_GEN}/dbwarden.8.gz ${DBW_PKG_GEN}/changelog.gz)

# The manual page is useful to a source install too.
install(FILES ${DBW_PKG_GEN}/dbwarden.8.gz DESTINATION share/man/man8)

install(FILES ${DBW_PKG_SRC}/dbwarden.yaml DESTINATION /etc/dbwarden
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${DBW_PKG_SRC}/copyright DESTINATION share/doc/dbwarden COMPONENT deb
        EXCLUDE_FROM_ALL)
# Lintian tags this package earns on purpose, each with its reason (packaging/README.md).
install(FILES ${DBW_PKG_SRC}/lintian-overrides DESTINATION share/lintian/overrides RENAME dbwarden
        COMPONENT deb EXCLUDE_FROM_ALL)
# A native package (upstream and packaging are one tree, version without a Debian revision):
# its one changelog is changelog.gz, not changelog.Debian.gz.
install(FILES ${DBW_PKG_GEN}/changelog.gz DESTINATION share/doc/dbwarden COMPONENT deb
        EXCLUDE_FROM_ALL)

# One package from two components: everything a source install gets (`Unspecified`: binary,
# unit, policy packs, man page) and the package-only files (`deb`).
set(CPACK_INSTALL_CMAKE_PROJECTS
    "${PROJECT_BINARY_DIR};dbwarden;Unspecified;/" "${PROJECT_BINARY_DIR};dbwarden;deb;/")

set(CPACK_GENERATOR DEB)
# cpack packages what the tree has built and builds nothing itself (its `preinstall` step does
# not depend on `all`): `make package` builds first, and the package test must not start a build.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(CPACK_PACKAGE_NAME dbwarden)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT
    "dbwarden maintainers <maintainers@users.noreply.r-seed-4161aea5.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "database governance and audit agent for PostgreSQL")
# CPack turns each line into a continuation line and an empty line into " .".
set(CPACK_PACKAGE_DESCRIPTION
    "dbwarden runs on database hosts as a systemd service. Clients reach
PostgreSQL through its relay, which ties every statement to a verified
identity (database user, client certificate or token, and the client's
process, systemd unit or container), checks it against policy before it
runs, masks sensitive result columns, and records it in a tamper-evident
audit log (RocksDB with a hash chain).

An eBPF tap observes every session on the protected servers, including
traffic that never passed the relay, and reports it as a bypass; kernel
routing can send local clients to the relay transparently. SREs query the
audit log, approve held statements and scrape metrics over an HTTP API;
SIEMs pull events as NDJSON, OCSF, ECS or CEF.

This package holds the agent and its command-line interface, the systemd
unit, an example configuration in /etc/dbwarden and the policy packs.")

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # dbwarden_<version>_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: from dpkg-shlibdeps over the shared libraries the binary actually links.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
# No -dbgsym package: the unstripped binary stays in the build tree (build/default/agent).
set(CPACK_DEBIAN_DEBUGINFO_PACKAGE OFF)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${DBW_PKG_SRC}/debian/conffiles ${DBW_PKG_SRC}/debian/postinst ${DBW_PKG_SRC}/debian/prerm
    ${DBW_PKG_SRC}/debian/postrm)
# Control files 0644, maintainer scripts 0755, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
