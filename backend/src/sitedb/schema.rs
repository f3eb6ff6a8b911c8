//! The database's objects: tables of our own naming (`sumstorm_*`, unlogged: the store is the
//! truth and rebuilds them) and views named and shaped as the product's, so the queries, reports
//! and connectors written against a ConfigMgr site database run here.
//!
//! Identifiers are unquoted, so PostgreSQL folds them to lower case and queries written as
//! SQL Server's (case-insensitive) `SELECT ResourceID FROM v_R_System` find them. Numbering, as
//! on a site: `ResourceID` from 16777216 per client in the order the database first saw it,
//! `CI_ID` 16777216 + the update's catalog index, an update group's 33554432 + its `GroupID`.
//! Flags are `int` 0/1 (SQL Server's `bit`). Columns the store does not model are NULL (listed
//! in the README). The status rows' pages are left 30 % free, so a changed state is rewritten in
//! its page (a heap-only update, no index entry to add).

/// The schema this build writes; another version in the database is dropped and rebuilt (the
/// store refills it).
pub const VERSION: i32 = 3;

/// The first `ResourceID`, and the first update's `CI_ID`.
pub const FIRST_ID: i32 = 16_777_216;
/// An update group's `CI_ID` is this + its `GroupID`.
pub const GROUP_CI_BASE: i32 = 33_554_432;

/// `sumstorm_mirror` holds a row once a full load committed. Unlogged tables are emptied when the
/// database server recovers from a crash; the row going with them tells the mirror to load again.
///
/// Everything the mirror made, to drop before rebuilding.
pub const DROP: &str = "
DROP VIEW IF EXISTS v_R_System, v_UpdateInfo, v_UpdateCIs, v_UpdateComplianceStatus,
    v_Update_ComplianceStatus, v_Update_ComplianceStatusAll, v_UpdateScanStatus, v_StateNames,
    v_Update_ComplianceSummary, v_AuthListInfo, v_CIRelation, v_CIAssignment, v_CIAssignmentToCI,
    v_UpdateDeploymentSummary, v_Collection CASCADE;
DROP FUNCTION IF EXISTS fn_rbac_UpdateComplianceStatus(text), fn_rbac_UpdateInfo(int, text),
    fn_rbac_R_System(text), fn_rbac_Update_ComplianceSummary(text);
DROP TABLE IF EXISTS sumstorm_site, sumstorm_client, sumstorm_update_status, sumstorm_update,
    sumstorm_update_group, sumstorm_group_member, sumstorm_deployment, sumstorm_update_summary,
    sumstorm_deployment_summary, sumstorm_state_names, sumstorm_mirror CASCADE;
";

/// The tables and views, made in one transaction.
pub const CREATE: &str = "
CREATE UNLOGGED TABLE sumstorm_site (
    site_code text NOT NULL, update_source_id uuid NOT NULL, content_version int NOT NULL);
CREATE UNLOGGED TABLE sumstorm_client (
    resource_id int PRIMARY KEY, guid uuid NOT NULL UNIQUE, netbios_name text NOT NULL,
    ad_site text, last_seen timestamp, retired boolean NOT NULL,
    scan_state smallint, scan_time timestamp, scan_content_version int);
CREATE UNLOGGED TABLE sumstorm_update_status (
    resource_id int NOT NULL, ci_id int NOT NULL, status smallint NOT NULL,
    last_status_check_time timestamp, last_status_change_time timestamp, serial bigint NOT NULL,
    PRIMARY KEY (resource_id, ci_id)) WITH (fillfactor = 70);
CREATE UNLOGGED TABLE sumstorm_update (
    ci_id int PRIMARY KEY, unique_id uuid NOT NULL, revision int NOT NULL, article_id text NOT NULL,
    title text NOT NULL, added_in int NOT NULL, superseded_by uuid, superseded_in int,
    is_deployed int NOT NULL);
CREATE UNLOGGED TABLE sumstorm_update_group (
    ci_id int PRIMARY KEY, group_id int NOT NULL, title text NOT NULL);
CREATE UNLOGGED TABLE sumstorm_group_member (group_ci_id int NOT NULL, ci_id int NOT NULL);
CREATE UNLOGGED TABLE sumstorm_deployment (
    assignment_id int PRIMARY KEY, name text NOT NULL, group_ci_id int NOT NULL,
    collection_id text NOT NULL, collection_name text NOT NULL);
CREATE UNLOGGED TABLE sumstorm_update_summary (
    ci_id int PRIMARY KEY, last_summarization_time timestamp, num_total int NOT NULL,
    num_unknown int NOT NULL, num_not_applicable int NOT NULL, num_missing int NOT NULL,
    num_present int NOT NULL);
CREATE UNLOGGED TABLE sumstorm_deployment_summary (
    assignment_id int NOT NULL, ci_id int NOT NULL, num_total int NOT NULL, num_unknown int NOT NULL,
    num_not_applicable int NOT NULL, num_missing int NOT NULL, num_present int NOT NULL,
    PRIMARY KEY (assignment_id, ci_id));
CREATE UNLOGGED TABLE sumstorm_mirror (loaded_at timestamp NOT NULL);
CREATE UNLOGGED TABLE sumstorm_state_names (
    topic_type int NOT NULL, state_id int NOT NULL, state_name text NOT NULL,
    PRIMARY KEY (topic_type, state_id));

CREATE VIEW v_R_System AS
SELECT c.resource_id AS ResourceID, c.netbios_name AS Name0, c.netbios_name AS Netbios_Name0,
       'GUID:' || upper(c.guid::text) AS SMS_Unique_Identifier0, c.ad_site AS AD_Site_Name0,
       1 AS Client0, CASE WHEN c.retired THEN 0 ELSE 1 END AS Active0, 0 AS Obsolete0,
       0 AS Decommissioned0
  FROM sumstorm_client c;

CREATE VIEW v_UpdateInfo AS
SELECT u.ci_id AS CI_ID, upper(u.unique_id::text) AS CI_UniqueID, NULL::text AS SDMPackage_ID,
       8 AS CIType_ID, regexp_replace(u.article_id, '^KB', '') AS ArticleID, ''::text AS BulletinID,
       u.title AS Title, u.title AS Description,
       'https://support.microsoft.com/help/' || regexp_replace(u.article_id, '^KB', '') AS InfoURL,
       NULL::int AS Severity, NULL::timestamp AS DatePosted, NULL::timestamp AS DateRevised,
       NULL::timestamp AS DateLastModified, u.revision AS RevisionNumber, u.is_deployed AS IsDeployed,
       CASE WHEN u.superseded_by IS NULL THEN 0 ELSE 1 END AS IsSuperseded, 0 AS IsExpired,
       1 AS IsEnabled, NULL::int AS MaxExecutionTime
  FROM sumstorm_update u;

CREATE VIEW v_UpdateCIs AS SELECT * FROM v_UpdateInfo;

CREATE VIEW v_UpdateComplianceStatus AS
SELECT s.ci_id AS CI_ID, s.resource_id AS ResourceID, s.status AS Status,
       s.last_status_check_time AS LastStatusCheckTime, s.last_status_change_time AS LastStatusChangeTime,
       NULL::int AS EnforcementSource, NULL::int AS LastEnforcementMessageID,
       NULL::timestamp AS LastEnforcementMessageTime, NULL::int AS LastEnforcementStatusMsgID,
       NULL::int AS LastErrorCode, NULL::timestamp AS LastLocalChangeTime
  FROM sumstorm_update_status s
 WHERE s.status > 1;

CREATE VIEW v_Update_ComplianceStatus AS SELECT * FROM v_UpdateComplianceStatus;

CREATE VIEW v_Update_ComplianceStatusAll AS
SELECT u.ci_id AS CI_ID, c.resource_id AS ResourceID, coalesce(s.status, 0)::smallint AS Status,
       s.last_status_check_time AS LastStatusCheckTime, s.last_status_change_time AS LastStatusChangeTime,
       NULL::int AS EnforcementSource, NULL::int AS LastEnforcementMessageID,
       NULL::timestamp AS LastEnforcementMessageTime, NULL::int AS LastErrorCode
  FROM sumstorm_update u
 CROSS JOIN sumstorm_client c
  LEFT JOIN sumstorm_update_status s ON s.ci_id = u.ci_id AND s.resource_id = c.resource_id
 WHERE NOT c.retired;

CREATE VIEW v_UpdateScanStatus AS
SELECT c.resource_id AS ResourceID, upper(site.update_source_id::text) AS UpdateSource_ID,
       c.scan_state AS LastScanState, c.scan_time AS LastScanTime, 0 AS LastErrorCode,
       NULL::text AS LastWUAVersion, c.scan_content_version AS LastScanPackageVersion,
       c.scan_time AS LastStatusMessageTime
  FROM sumstorm_client c CROSS JOIN sumstorm_site site
 WHERE c.scan_state IS NOT NULL;

CREATE VIEW v_StateNames AS
SELECT topic_type AS TopicType, state_id AS StateID, state_name AS StateName,
       state_name AS StateDescription
  FROM sumstorm_state_names;

CREATE VIEW v_Update_ComplianceSummary AS
SELECT ci_id AS CI_ID, last_summarization_time AS LastSummarizationTime, num_total AS NumTotal,
       num_unknown AS NumUnknown, num_not_applicable AS NumNotApplicable, num_missing AS NumMissing,
       num_present AS NumPresent, num_present AS NumInstalled, 0 AS NumFailed
  FROM sumstorm_update_summary;

CREATE VIEW v_AuthListInfo AS
SELECT g.ci_id AS CI_ID, 'ScopeId_' || site.site_code || '/AuthList_' || g.group_id AS CI_UniqueID,
       NULL::text AS SDMPackage_ID, g.title AS Title, g.title AS Description,
       NULL::timestamp AS DateCreated, NULL::timestamp AS DateLastModified,
       NULL::text AS LastModifiedBy, site.site_code AS SourceSite
  FROM sumstorm_update_group g CROSS JOIN sumstorm_site site;

CREATE VIEW v_CIRelation AS
SELECT group_ci_id AS FromCIID, ci_id AS ToCIID, 1 AS RelationType FROM sumstorm_group_member;

CREATE VIEW v_CIAssignment AS
SELECT assignment_id AS AssignmentID, name AS AssignmentName, collection_id AS CollectionID,
       collection_name AS CollectionName
  FROM sumstorm_deployment;

CREATE VIEW v_CIAssignmentToCI AS
SELECT d.assignment_id AS AssignmentID, m.ci_id AS CI_ID
  FROM sumstorm_deployment d JOIN sumstorm_group_member m ON m.group_ci_id = d.group_ci_id;

CREATE VIEW v_UpdateDeploymentSummary AS
SELECT s.assignment_id AS AssignmentID, s.ci_id AS CI_ID, d.collection_id AS CollectionID,
       d.collection_name AS CollectionName, s.num_total AS NumTotal, s.num_unknown AS NumUnknown,
       s.num_not_applicable AS NumNotApplicable, s.num_missing AS NumMissing,
       s.num_present AS NumPresent, s.num_present AS NumInstalled, 0 AS NumFailed
  FROM sumstorm_deployment_summary s JOIN sumstorm_deployment d USING (assignment_id);

CREATE FUNCTION fn_rbac_UpdateComplianceStatus(usersids text)
    RETURNS SETOF v_UpdateComplianceStatus LANGUAGE sql STABLE
    AS 'SELECT * FROM v_UpdateComplianceStatus';
CREATE FUNCTION fn_rbac_UpdateInfo(lcid int, usersids text)
    RETURNS SETOF v_UpdateInfo LANGUAGE sql STABLE AS 'SELECT * FROM v_UpdateInfo';
CREATE FUNCTION fn_rbac_R_System(usersids text)
    RETURNS SETOF v_R_System LANGUAGE sql STABLE AS 'SELECT * FROM v_R_System';
CREATE FUNCTION fn_rbac_Update_ComplianceSummary(usersids text)
    RETURNS SETOF v_Update_ComplianceSummary LANGUAGE sql STABLE
    AS 'SELECT * FROM v_Update_ComplianceSummary';
";
